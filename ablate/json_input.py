"""Bounded reading of the JSON and JSONL files users hand to ablate.

Predictions files, ScienceQA's ``problems.json`` / ``pid_splits.json`` / ``captions.json`` and the
per-question predictions of finished runs all come from outside the program. Python's ``json``
module recurses once per ``[`` or ``{``, so ``[`` x 100000 ends in a ``RecursionError`` traceback,
and a file that is not UTF-8 gives a codec error that names no file. Every such file is read here
instead, and anything wrong is one :class:`JsonInputError` naming the file (and the line of a JSONL
file), what was wrong and what is allowed.

The nesting depth is checked before parsing, on the raw bytes, so the parser never sees a file
deeper than :data:`MAX_DEPTH`: escaped quotes and backslashes are dropped, then every byte but
quotes and brackets (two C-speed passes), then adjacent quote pairs (strings holding no bracket)
and adjacent bracket pairs (empty containers, a few passes on what is left); the few bytes that
remain are walked in Python. UTF-8 never uses ASCII bytes inside a multi-byte character, so
working on bytes is exact. On the full-size ScienceQA ``problems.json`` this costs a fraction of
the parse itself (``bench/bench_json_input.py``; the figure is in the README's reliability table).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ablate.errors import AblateError

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; ScienceQA files and predictions need 3."""

_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_CURLY_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_ESCAPED_QUOTE_OR_BACKSLASH = re.compile(rb'\\[\\"]')
_QUOTE, _OPEN = ord('"'), ord("[")
_BOM = "\ufeff"


class JsonInputError(AblateError, ValueError):
    """A JSON or JSONL input file that cannot be read; the message says where, what and why.

    Also a ``ValueError``, so callers that already treat a malformed file as a ``ValueError``
    (loaders, the fuzz tests' contract) keep working.
    """


def deeper_than(raw: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than ``limit`` deep, without parsing it.

    Exact for valid JSON; for invalid JSON it agrees with the parser on every prefix the parser
    accepts, so the parser never recurses deeper than ``limit``.

    Args:
        raw: the JSON text, UTF-8 encoded.
        limit: the deepest nesting allowed.
    """
    if b"\\" in raw:  # most files have no escape at all: skip the costlier of the two passes
        raw = _ESCAPED_QUOTE_OR_BACKSLASH.sub(b"", raw)
    structure = raw.translate(_CURLY_AS_SQUARE, _NOT_STRUCTURE)
    # two adjacent quotes are a string without brackets (or the end of one and the start of the
    # next): dropping them keeps the inside/outside state of every bracket that remains
    structure = structure.replace(b'""', b"")
    # an adjacent "[]" is an empty array or object (or two brackets inside one string): dropping
    # them, pass after pass, leaves the depth of every other bracket as it was, and each pass hides
    # at most one level, so the deepest level is between the rest's and the rest's + passes
    rest, passes = structure, 0
    while passes < limit:
        shorter = rest.replace(b"[]", b"")
        if len(shorter) == len(rest):
            break
        rest, passes = shorter, passes + 1
    depth = _deepest(rest, limit)
    if depth > limit or depth + passes <= limit:
        return depth > limit
    return _deepest(structure, limit) > limit


def _deepest(structure: bytes, limit: int) -> int:
    """The deepest level of quotes-and-brackets ``structure``, counted up to ``limit + 1``."""
    depth = deepest = 0
    in_string = False
    for byte in structure:
        if byte == _QUOTE:
            in_string = not in_string
        elif in_string:
            continue
        elif byte == _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def decode_utf8(raw: bytes, where: str, what: str) -> str:
    """``raw`` as text; an error naming the line and column of the first byte that is not UTF-8.

    A leading byte-order mark (as some Windows editors write) is dropped.

    Args:
        raw: the file's bytes.
        where: the file (``path`` or ``path:line``) for the message.
        what: what the file should hold, for the message.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        bad = raw[err.start : err.start + 1].hex()
        raise JsonInputError(
            f"{where}: not UTF-8 text (byte 0x{bad} at line {line}, column {column}); "
            f"expected {what}, saved as UTF-8"
        ) from None
    return text.removeprefix(_BOM)


def parse_json(
    raw: bytes | str,
    *,
    where: str,
    what: str,
    max_depth: int = MAX_DEPTH,
    jsonl_line: bool = False,
) -> Any:
    """Parse one JSON document with its nesting bounded; every failure is a :class:`JsonInputError`.

    Args:
        raw: the document, as bytes (checked to be UTF-8) or text.
        where: the file (``path`` or ``path:line``) for messages.
        what: what the document should hold, for messages ("{pid: index}").
        max_depth: the deepest nesting of arrays and objects allowed.
        jsonl_line: ``raw`` is one line of a JSONL file (``where`` names the line), so a syntax
            error gives only its column.
    """
    if isinstance(raw, str):
        text, raw = raw, raw.encode("utf-8", "surrogatepass")
    else:
        text = decode_utf8(raw, where, what)
    if deeper_than(raw, max_depth):
        raise _too_deep(where, what, max_depth)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        at = f"column {err.colno}" if jsonl_line else f"line {err.lineno}, column {err.colno}"
        raise JsonInputError(
            f"{where}: not valid JSON ({err.msg} at {at}); expected {what}"
        ) from None
    except RecursionError:  # not reached after the depth check; kept so it can never surface
        raise _too_deep(where, what, max_depth) from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise JsonInputError(f"{where}: not valid JSON ({err}); expected {what}") from None


def _too_deep(where: str, what: str, max_depth: int) -> JsonInputError:
    return JsonInputError(
        f"{where}: arrays and objects nested more than {max_depth} levels deep (at most "
        f"{max_depth} allowed); expected {what}"
    )


def read_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """The file's bytes; a missing file or a folder is a ``FileNotFoundError`` saying what belongs.

    Args:
        path: the file.
        what: what the file should hold, for the message.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; expected {what} here")
    return path.read_bytes()


def read_json_file(path: str | os.PathLike[str], what: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Read a whole-file JSON document, bounded (see :func:`parse_json`).

    Args:
        path: the file.
        what: what the file should hold, for messages ("the ScienceQA problems {pid: {...}}").
        max_depth: the deepest nesting of arrays and objects allowed.

    Raises:
        FileNotFoundError: the file does not exist.
        JsonInputError: not UTF-8, nested too deep, or not valid JSON.
    """
    return parse_json(read_bytes(path, what), where=str(path), what=what, max_depth=max_depth)


def parse_jsonl(
    raw: bytes, *, source: str, what: str, max_depth: int = MAX_DEPTH
) -> list[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of JSONL bytes, each line bounded.

    Args:
        raw: the file's bytes.
        source: the file, for messages (``source:line``).
        what: what each line should hold, for messages.
        max_depth: the deepest nesting allowed within one line.

    Raises:
        JsonInputError: a line that is not UTF-8, nested too deep, or not valid JSON.
    """
    return [
        (
            n,
            parse_json(
                line, where=f"{source}:{n}", what=what, max_depth=max_depth, jsonl_line=True
            ),
        )
        for n, line in enumerate(raw.split(b"\n"), 1)
        if line.strip()
    ]


def read_jsonl_file(
    path: str | os.PathLike[str], what: str, *, max_depth: int = MAX_DEPTH
) -> list[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of a JSONL file (see :func:`parse_jsonl`).

    Args:
        path: the file.
        what: what each line should hold, for messages ("an object with 'pid'").
        max_depth: the deepest nesting allowed within one line.

    Raises:
        FileNotFoundError: the file does not exist.
        JsonInputError: a line that is not UTF-8, nested too deep, or not valid JSON.
    """
    raw = read_bytes(path, what)
    return parse_jsonl(raw, source=str(path), what=what, max_depth=max_depth)
