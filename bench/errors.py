"""The one exception type for mistakes a user can fix.

The CLI prints a UserError as a single line and exits with status 2; anything
else is a bug in ganbench and keeps its traceback.
"""

import errno


class UserError(Exception):
    """A problem with the user's input (sweep file, CLI argument, data path)."""

    exit_code = 2


# OSError numbers that are faults of the machine (a full disk, a quota, a
# file-size limit, an I/O error, a read-only file system, no memory): the
# CLI exits 1 for them, 2 for the others (a path that is a file, a folder
# without write permission: something the user gave).
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.ENOMEM})


def is_machine_fault(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS


def os_error_line(exc: OSError) -> str:
    """'<path>: <what> (errno N NAME)': an OSError in one line."""
    where = f"{exc.filename}: " if exc.filename else ""
    name = errno.errorcode.get(exc.errno, "?") if exc.errno else "?"
    return f"{where}{exc.strerror or exc} (errno {exc.errno} {name})"
