"""The one exception type for mistakes a user can fix.

The CLI prints a UserError as a single line and exits with status 2; anything
else is a bug in ganbench and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (sweep file, CLI argument, data path)."""

    exit_code = 2
