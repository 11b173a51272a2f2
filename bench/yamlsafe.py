"""Strict YAML for the files a user hands ganbench: sweeps and SLURM profiles.

`yaml.safe_load` is safe against code, not against size or surprises: an
alias bomb (a few hundred bytes of `&a [*b, *b, ...]`) expands to billions
of items, 5,000 nested brackets overflow the recursion limit, and a key
written twice silently keeps the last value. Here, before anything is
built:

- the file is a regular file (a FIFO or a device is refused before reading)
  of at most `MAX_BYTES` (checked before reading) and UTF-8;
- anchors, aliases and merge keys (`&a`, `*a`, `<<`) are refused: a sweep
  file says each value where it applies;
- nesting is at most `MAX_DEPTH` mappings/lists deep, counted on the event
  stream (no recursion), so a deep file is refused at its first excess;
- a key written twice in one mapping is refused with both lines;
- an integer has at most `MAX_INT_DIGITS` digits, hexadecimal ones too (Python
  would refuse a 4,300-digit one with a ValueError of its own);
- YAML 1.1's octal (`010` = 8) and base-60 (`1:30` = 90) numbers are refused:
  nobody writing a seed means them.

Every problem is one `UserError` line: "<file>: line N: what is wrong".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from bench.errors import UserError, shown

MAX_BYTES = 1 << 20  # 1 MiB: a sweep of 100,000 explicit cells fits in a few hundred KB
MAX_DEPTH = 32  # the deepest sweep setting (budgets.NAME.overrides.method.M.optimizer.betas) is 8
MAX_INT_DIGITS = 30  # every integer a sweep may hold is < 2**64, 20 digits

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: ~10x faster


def load_file(path: str | Path, what: str = "file") -> Any:
    """The data of one YAML file, or a one-line UserError naming `path`."""
    path = Path(path)
    data = read_bytes(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        f"save the {what} as UTF-8") from None  # fmt: skip
    return load_text(text, str(path))


def read_bytes(path: Path, what: str = "file") -> bytes:
    """The bytes of a user's file of at most MAX_BYTES, its type and size checked
    before anything is read (a FIFO would hang, /dev/zero never ends, a 3 GB
    file would be read whole); a one-line UserError otherwise. Links are
    followed: the user named this file."""
    from bench.store import Damaged, open_regular

    try:
        with open_regular(path, sys.maxsize, follow=True) as handle:
            if handle is None:
                raise UserError(f"{path}: no such {what}")
            if os.fstat(handle.fileno()).st_size > MAX_BYTES:
                raise UserError(f"{path}: the {what} is larger than {MAX_BYTES:,} bytes; a {what} is a short text file")
            data = handle.read(MAX_BYTES + 1)
    except Damaged as exc:
        raise UserError(f"{path}: cannot read the {what}: {exc.reason}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"{path}: the {what} is larger than {MAX_BYTES:,} bytes; a {what} is a short text file")
    return data


def load_text(text: str, where: str) -> Any:
    """The data of YAML `text`; errors start with `where` (a file, or e.g. "--set x=1")."""
    try:
        _check_events(text, where)
        loader = _StrictLoader(text)
        loader.where = where
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: {_describe(exc, text)}") from None


def _check_events(text: str, where: str) -> None:
    """Refuse anchors, aliases and deep nesting while streaming: nothing is built yet."""
    try:
        _walk_events(text, where)
    except yaml.YAMLError as exc:
        # libyaml >= 0.2.5 (PyYAML 6.0.4 wheels) has a nesting limit of its own, met while
        # scanning ahead of the events below: the same refusal, in the same words.
        mark = getattr(exc, "problem_mark", None)
        if mark is not None and "nesting depth" in str(getattr(exc, "problem", "")):
            raise UserError(_too_deep(where, mark.line + 1)) from None
        raise


def _too_deep(where: str, line: int) -> str:
    return f"{where}: line {line}: nested more than {MAX_DEPTH} levels deep; a sweep setting is at most a few levels deep"


def _walk_events(text: str, where: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_Base):
        line = event.start_mark.line + 1
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            mark = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise UserError(f"{where}: line {line}: YAML anchors and aliases are not allowed ({mark}{anchor}); "
                            "write each value out")  # fmt: skip
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise UserError(_too_deep(where, line))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


class _StrictLoader(_Base):
    """Safe constructors, plus: no duplicate keys, no merge keys, bounded integers."""

    where = ""

    def construct_mapping(self, node, deep=False):
        first_line: dict = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise UserError(f"{self.where}: line {line}: YAML merge keys (<<) are not allowed; write the keys out")
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first_line.get(key)
            except TypeError:  # an unhashable key: the base constructor names it
                continue
            if seen is not None:
                raise UserError(f"{self.where}: line {line}: duplicate key {key!r} (first on line {seen}); "
                                "a key may appear once in a mapping")  # fmt: skip
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        text = str(node.value)
        line = node.start_mark.line + 1
        digits = sum(c.isalnum() for c in text.lower().replace("0x", "").replace("0b", ""))  # hexadecimal digits too
        if digits > MAX_INT_DIGITS:
            raise UserError(f"{self.where}: line {line}: an integer of {digits} digits is out of "
                            f"range (at most {MAX_INT_DIGITS} digits)")  # fmt: skip
        # YAML 1.1 reads 010 as 8 and 1:30 as 90; nobody writing a seed means that.
        plain = text.lstrip("+-").replace("_", "")
        if ":" in plain or (len(plain) > 1 and plain.startswith("0") and plain.isdigit()):
            form = "a base-60 number" if ":" in plain else "an octal number"
            raise UserError(f"{self.where}: line {line}: {shown(text, 40)} is {form} in YAML 1.1 "
                            f"({super().construct_yaml_int(node)}); write the number without a leading 0 or ':', "
                            "or quote it if it is text")  # fmt: skip
        return super().construct_yaml_int(node)


    def construct_yaml_float(self, node):
        if ":" in str(node.value):  # YAML 1.1's base-60 float: 1:30.5 is 90.5
            raise UserError(f"{self.where}: line {node.start_mark.line + 1}: {shown(str(node.value), 40)} is a base-60 "
                            "number in YAML 1.1; write the number without ':', or quote it if it is text")  # fmt: skip
        return super().construct_yaml_float(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _describe(exc: yaml.YAMLError, text: str) -> str:
    """One line for any PyYAML error (their own str() spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None and isinstance(exc, yaml.reader.ReaderError):  # a control character, e.g. NUL
        line = text[: exc.position].count("\n") + 1
        return f"line {line}: not valid YAML (character #x{exc.character:04x} is not allowed in YAML text)"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}: " if mark else ""
    return f"{where}not valid YAML ({problem}{f', {context}' if context else ''})"
