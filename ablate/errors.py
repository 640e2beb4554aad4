"""User-facing errors: one clear message, a non-zero exit, never a traceback.

Every error a user can cause by what they wrote (a sweep YAML, a runner profile, a predictions file,
a weight path) derives from :class:`AblateError`. The CLI prints ``str(error)`` and exits with
``error.exit_code``; anything else is a bug and keeps its traceback.

Two exceptions here are not user errors but the ways a job ends an attempt on purpose
(:class:`JobCancelled`, :class:`BatchCannotShrink`): they live at the bottom layer because the
training loop, the evaluation loop and the executors all raise or classify them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class AblateError(Exception):
    """Base of errors caused by user input or environment, shown without a traceback."""

    exit_code = 2


class SpecError(AblateError):
    """A sweep, run spec or runner profile is malformed.

    The message names the file, the line when known, the dotted key, the bad value and what is
    allowed, e.g.::

        sweeps/table2.yaml:14: grid.adapter.dimm: unknown key 'dimm' (did you mean 'dim'?)
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        value: Any = None,
        allowed: Iterable[Any] | None = None,
        show_value: bool = True,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        self.value = value
        self.allowed = list(allowed) if allowed is not None else None
        self.message = message
        where = self.file or "<spec>"
        if line is not None:
            where += f":{line}"
        parts = [where + ":"]
        if key:
            parts.append(f"{key}:")
        parts.append(message)
        if show_value and value is not None:
            parts.append(f"(got {value!r})")
        text = " ".join(parts)
        if self.allowed:
            text += "; allowed: " + ", ".join(str(a) for a in self.allowed)
        super().__init__(text)


class SpecErrors(SpecError):
    """Several spec errors found at once: every error of a file, up to a limit, one per line.

    A :class:`SpecError` itself (the first error's file, line and key), so every caller that
    handles one handles this too; ``errors`` holds them all.
    """

    def __init__(self, errors: Sequence[SpecError], more: int = 0) -> None:
        first = errors[0]
        super().__init__(
            first.message,
            file=first.file,
            line=first.line,
            key=first.key,
            value=first.value,
            allowed=first.allowed,
        )
        self.errors = list(errors)
        lines = [str(e) for e in self.errors]
        if more:
            lines.append(f"... and {more} more")
        text = f"{len(self.errors) + more} errors:\n" + "\n".join(f"  {line}" for line in lines)
        self.args = (text,)


def spec_errors(errors: Sequence[SpecError], limit: int) -> SpecError:
    """One error for ``errors`` (distinct, in order): itself alone, else a :class:`SpecErrors`.

    Args:
        errors: at least one error; repeats (the same text) are dropped.
        limit: the most errors listed; the rest are counted ("... and 3 more").
    """
    distinct = list({str(e): e for e in errors}.values())
    distinct.sort(key=lambda e: (e.file or "", e.line or 0))  # as the user reads the file
    if len(distinct) == 1:
        return distinct[0]
    return SpecErrors(distinct[:limit], more=max(0, len(distinct) - limit))


class ConfigError(AblateError, ValueError):
    """A run cannot start because of what its spec says: ``data.root`` not set, weights absent.

    It is the spec's fault, not the machine's: an attempt that fails with it is recorded with
    failure kind ``config``, is never retried as if transient and never spends the retry budget,
    so a rerun after the fix runs it. A ``ValueError`` too, for callers that catch those.
    """


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix when a close candidate exists, else ``""``."""
    matches = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


class JobCancelled(Exception):
    """Raised by a job that stopped because it was asked to (the attempt is recorded cancelled)."""


class BatchCannotShrink(MemoryError):
    """The micro-batch cannot be halved again after out-of-memory failures (recorded as OOM)."""
