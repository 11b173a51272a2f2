"""The one exception type for mistakes a user can fix.

The CLI prints a UserError as a single line and exits with status 2; anything
else is a bug in ganbench and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (sweep file, CLI argument, data path)."""

    exit_code = 2


def shown(value, width: int = 60, quote: bool = True) -> str:
    """User input quoted in a one-line error: repr(value), or with quote=False a
    printable string as it is (a path), cut to `width` characters."""
    text = value if not quote and isinstance(value, str) and value.isprintable() else repr(value)
    if len(text) <= width:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} characters written out"
    return f"{text[:width]}... ({size})"
