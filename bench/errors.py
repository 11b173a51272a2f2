"""The one exception type for mistakes a user can fix.

The CLI prints a UserError as a single line and exits with status 2; anything
else is a bug in ganbench and keeps its traceback.
"""

import errno


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


def error_line(exc: BaseException, width: int = 200) -> str:
    """'<Type>: <first line of its message>', or just the type when the message is empty
    (torch's EOFError('') of an empty file): an exception in one line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:width]}" if lines else type(exc).__name__
