"""What a sweep invocation came to: its attempts' records, what is not done, its exit code.

Records of attempts whose worker died without writing one are built in
:mod:`ablate.execution.lost_attempts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ablate.store.record import AttemptRecord, AttemptStatus

if TYPE_CHECKING:
    from ablate.orchestrate.plan import Plan

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_INTERRUPTED = 130


@dataclass
class SweepResult:
    """What a sweep invocation did.

    Attributes:
        sweep: the sweep's name.
        plan: the plan it started from.
        records: the records of the attempts it ran, in the order they ended.
        not_done: run ids still not done at the end (failed, exhausted, cancelled, held).
        interrupted: whether SIGINT/SIGTERM stopped it.
        submitted: run ids submitted detached (SLURM): they run after this invocation returns.
    """

    sweep: str
    plan: Plan
    records: list[AttemptRecord] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    interrupted: bool = False
    submitted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the end of an invocation."""
        if self.submitted and not self.records:
            return (
                f"submitted {len(self.submitted)} run(s); they run after this command returns; "
                f"{len(self.not_done)} run(s) neither done nor submitted"
            )
        ok = self.count(AttemptStatus.SUCCESS)
        end = "interrupted" if self.interrupted else "finished"
        return (
            f"{end}: {ok} succeeded, {len(self.records) - ok} did not; "
            f"{len(self.not_done)} run(s) not done"
        )

    def count(self, status: AttemptStatus) -> int:
        """Attempts of this invocation that ended with ``status``."""
        return sum(r.status is status for r in self.records)

    @property
    def exit_code(self) -> int:
        """0 when every run is done, 130 after an interrupt, 1 otherwise."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_INCOMPLETE if self.not_done else EXIT_OK
