"""A job kind that misbehaves with secrets, for the security tests (``ABLATE_JOB_MODULES``).

``leaky`` prints ``$HF_TOKEN`` to its log, then either raises an error quoting it or kills its own
worker with SIGKILL (so the orchestrator writes the record from the log tail).
"""

from __future__ import annotations

import os
import signal

from pydantic import Field

from ablate.spec.base import SpecModel
from ablate.spec.job_kinds import JobKind, register_job


class LeakyConfig(SpecModel):
    """How the job ends."""

    ending: str = Field("raise", pattern="^(raise|sigkill|succeed)$")


def run_leaky(spec, ctx) -> dict[str, float]:
    """Print the token, then end as configured."""
    token = os.environ.get("HF_TOKEN", "")
    print(f"debug: using HF_TOKEN={token} for https://user:{token}@example.org", flush=True)
    if spec.config.ending == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if spec.config.ending == "raise":
        raise RuntimeError(f"download failed: 401 for token {token}")
    return {"ok": 1.0}


register_job(JobKind(name="leaky", config_cls=LeakyConfig, run="leaky_job:run_leaky"))
