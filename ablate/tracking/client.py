"""An MLflow client that never stops training: writes go to the server, or to the spool.

:class:`TrackingClient` wraps :class:`mlflow.MlflowClient` (imported lazily: the CLI and the
report never pay for it) with a circuit breaker. The first write that fails for a reason that
looks like an outage (connection refused, timeout, a locked or missing database) marks the server
down for ``retry_after_s``; meanwhile every write is appended to the spool at once, without
waiting for a timeout. Errors that are the request's own fault (an invalid value) are not outages:
they are warned about and dropped, since replaying them would fail the same way.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from ablate.tracking.config import (
    apply_http_defaults,
    is_local_uri,
    local_artifact_root,
    public_uri,
    redact_value,
    usable_uri,
)
from ablate.tracking.spool import Spool, is_local_ref, load_refs, new_local_ref
from ablate.tracking.sqlite_db import ensure_sqlite_db

REQUEST_ERRORS = frozenset(
    {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST", "INVALID_STATE"}
)
LOCKED_RETRIES = (0.2, 0.5, 1.0)
PARENT_REF_TAG = "ablate.parent_ref"  # a child's parent created while the server was down


class TrackingOutageWarning(UserWarning):
    """The tracking server could not be reached; writes are being spooled to disk."""


def is_outage(exc: BaseException) -> bool:
    """Whether an exception means "server unreachable" (spool, retry) rather than "bad request"."""
    code = getattr(exc, "error_code", None)
    return code not in REQUEST_ERRORS


def mlflow_client(uri: str) -> Any:
    """A plain MlflowClient for ``uri`` (short HTTP timeouts applied first).

    An embedded SQLite database is made whole first (:func:`ensure_sqlite_db`): created by one
    process under a lock, or moved aside if an earlier creation was cut short or raced.
    """
    apply_http_defaults()
    ensure_sqlite_db(uri)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


class TrackingClient:
    """Resilient writes to one tracking URI.

    Args:
        tracking_uri: the MLflow tracking URI; one read back from disk, with its password masked
            (:func:`~ablate.tracking.config.public_uri`), is completed from
            ``$MLFLOW_TRACKING_URI`` when that holds it.
        spool_dir: where writes go while the server is down.
        retry_after_s: how long the server is considered down after a failed write.
    """

    def __init__(
        self, tracking_uri: str, spool_dir: Path | str, *, retry_after_s: float = 30.0
    ) -> None:
        self.tracking_uri = usable_uri(tracking_uri) or tracking_uri
        self.public_uri = public_uri(tracking_uri)  # what is printed and stored
        self.spool = Spool(spool_dir, self.public_uri)
        self.retry_after_s = retry_after_s
        self._client: Any = None
        self._down_until = 0.0
        self._warned = False
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI, from create/get

    # ------------------------------------------------------------------------------ state
    @property
    def online(self) -> bool:
        """False while the circuit breaker holds writes back."""
        return time.monotonic() >= self._down_until

    @property
    def client(self) -> Any:
        """The underlying MlflowClient (created on first use)."""
        if self._client is None:
            self._client = mlflow_client(self.tracking_uri)
        return self._client

    def _mark_down(self, what: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after_s
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"tracking server {self.public_uri} unreachable ({what}: "
                f"{type(exc).__name__}: {redact_value(str(exc)[:200])}); training goes on, "
                "tracking writes are "
                f"kept in {self.spool.directory}; run `ablate sync` once it is back",
                TrackingOutageWarning,
                stacklevel=3,
            )

    def _try(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """Call ``fn``; (True, result), or (False, None) after an outage (or a dropped request)."""
        if not self.online:
            return False, None
        delays = LOCKED_RETRIES if is_local_uri(self.tracking_uri) else ()
        for attempt in range(len(delays) + 1):
            try:
                return True, fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any failure must not reach training
                if not is_outage(exc):
                    warnings.warn(
                        f"tracking: {what} rejected ({redact_value(str(exc)[:300])}); not retried",
                        stacklevel=3,
                    )
                    return True, None
                if attempt < len(delays) and "locked" in str(exc).lower():
                    time.sleep(delays[attempt])
                    continue
                self._mark_down(what, exc)
                return False, None
        return False, None  # pragma: no cover - the loop always returns

    def _resolve(self, ref: str) -> str | None:
        """A real id for a local reference, if a replay already created it."""
        if not is_local_ref(ref):
            return ref
        return load_refs(self.spool.directory).get(ref)

    # ------------------------------------------------------------------------------ reads
    def experiment_id(self, name: str, artifact_location: str | None = None) -> str:
        """The id of experiment ``name``, created if needed (a local reference while offline)."""
        ok, exp = self._try("get experiment", lambda: self.client.get_experiment_by_name(name))
        if ok and exp is not None:
            return str(exp.experiment_id)
        if ok:
            ok, exp_id = self._try(
                "create experiment",
                lambda: self.client.create_experiment(name, artifact_location=artifact_location),
            )
            if ok and exp_id is not None:
                return str(exp_id)
            if ok:  # created concurrently by another process
                exp = self.client.get_experiment_by_name(name)
                if exp is not None:
                    return str(exp.experiment_id)
        ref = new_local_ref()
        self.spool.append(
            "create_experiment", ref=ref, name=name, artifact_location=artifact_location
        )
        return ref

    def run_status(self, run_id: str) -> str | None:
        """The MLflow status of a run (``None``: unknown, deleted or unreachable)."""
        real = self._resolve(run_id)
        if real is None or is_local_ref(real):
            return None
        ok, run = self._try("get run", lambda: self.client.get_run(real))
        if not ok or run is None or run.info.lifecycle_stage == "deleted":
            return None
        self._artifact_uris[real] = run.info.artifact_uri
        return str(run.info.status)

    def find_run(self, experiment_id: str, tag: str, value: str) -> str | None:
        """The newest live run of an experiment with ``tags.<tag> = value`` (``None`` if none)."""
        real = self._resolve(experiment_id)
        if real is None or is_local_ref(real):
            return None
        query = f"tags.`{tag}` = '{value}'"
        ok, runs = self._try(
            "search runs",
            lambda: self.client.search_runs([real], filter_string=query, max_results=1),
        )
        if not ok or not runs:
            return None
        return str(runs[0].info.run_id)

    # ----------------------------------------------------------------------------- writes
    def create_run(self, experiment_id: str, *, run_name: str, tags: dict[str, str]) -> str:
        """Create a run (a local reference while offline, created by ``ablate sync``)."""
        real = self._resolve(experiment_id)
        if real is not None and not is_local_ref(real):
            ok, run = self._try(
                "create run",
                lambda: self.client.create_run(real, run_name=run_name, tags=tags),
            )
            if ok and run is not None:
                self._artifact_uris[run.info.run_id] = run.info.artifact_uri
                return str(run.info.run_id)
        ref = new_local_ref()
        self.spool.append(
            "create_run",
            ref=ref,
            experiment=experiment_id,
            run_name=run_name,
            tags=tags,
            start_time=int(time.time() * 1000),
        )
        return ref

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: list[tuple[str, float, int, int]] = (),  # type: ignore[assignment]
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        spool: bool = True,
    ) -> bool:
        """Log metrics ``(key, value, timestamp_ms, step)``, params and tags; True if sent now.

        Args:
            run_id: the run (a local reference is resolved through the spool's ``refs.json``).
            metrics: ``(key, value, timestamp_ms, step)`` rows.
            params: params to log.
            tags: tags to set.
            spool: keep what could not be sent in the spool; ``False`` drops it and only returns
                ``False`` (the caller keeps its own cursor, as the run-folder sync does), and
                stops at the first chunk that fails.
        """
        from ablate.tracking.batching import batches

        sent_all = True
        for chunk_metrics, chunk_params, chunk_tags in batches(metrics, params or {}, tags or {}):
            if not self._log_chunk(run_id, chunk_metrics, chunk_params, chunk_tags, spool):
                sent_all = False
                if not spool:
                    break
        return sent_all

    def _log_chunk(
        self,
        run_id: str,
        metrics: list[tuple[str, float, int, int]],
        params: dict[str, str],
        tags: dict[str, str],
        spool: bool = True,
    ) -> bool:
        real = self._resolve(run_id)
        if real is not None and not is_local_ref(real):

            def send() -> None:
                from mlflow.entities import Metric, Param, RunTag

                self.client.log_batch(
                    real,
                    metrics=[Metric(k, float(v), int(ts), int(s)) for k, v, ts, s in metrics],
                    params=[Param(k, v) for k, v in params.items()],
                    tags=[RunTag(k, v) for k, v in tags.items()],
                    synchronous=True,
                )

            ok, _ = self._try("log batch", send)
            if ok:
                return True
        if not spool:
            return False
        self.spool.append(
            "log_batch", run=run_id, metrics=[list(m) for m in metrics], params=params, tags=tags
        )
        return False

    def update_run(self, run_id: str, status: str) -> None:
        """Set a run's status (``RUNNING`` when an attempt resumes it)."""
        real = self._resolve(run_id)
        if real is not None and not is_local_ref(real):
            ok, _ = self._try("update run", lambda: self.client.update_run(real, status=status))
            if ok:
                return
        self.spool.append("update_run", run=run_id, status=status)

    def set_terminated(self, run_id: str, status: str) -> None:
        """End a run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        end = int(time.time() * 1000)
        real = self._resolve(run_id)
        if real is not None and not is_local_ref(real):
            ok, _ = self._try(
                "end run", lambda: self.client.set_terminated(real, status=status, end_time=end)
            )
            if ok:
                return
        self.spool.append("set_terminated", run=run_id, status=status, end_time=end)

    def set_experiment_tags(self, experiment_id: str, tags: dict[str, str]) -> None:
        """Set experiment tags (what the UI shows first: its kind, description, saved view)."""
        real = self._resolve(experiment_id)
        for key, value in tags.items():
            if real is not None and not is_local_ref(real):
                ok, _ = self._try(
                    "set experiment tag",
                    lambda k=key, v=value: self.client.set_experiment_tag(real, k, v),
                )
                if ok:
                    continue
            self.spool.append("set_experiment_tag", experiment=experiment_id, key=key, value=value)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """Upload one file (copied into the spool while offline)."""
        real = self._resolve(run_id)
        if real is not None and not is_local_ref(real):
            ok, _ = self._try("log artifact", lambda: self._upload(real, str(path), artifact_path))
            if ok:
                return
        self.spool.append("log_artifact", run=run_id, path=str(path), artifact_path=artifact_path)

    def _upload(self, run_id: str, path: str, artifact_path: str | None) -> None:
        """Upload a file, straight to the run's artifact store when its URI is known.

        ``MlflowClient.log_artifact`` fetches the whole run (a ``get_run``) to learn where its
        artifacts go; this client already learnt that when it created or looked up the run.
        """
        uri = self._artifact_uris.get(run_id)
        if uri is None or self.tracking_uri.startswith("databricks"):
            self.client.log_artifact(run_id, path, artifact_path=artifact_path)
            return
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(uri, tracking_uri=self.tracking_uri)
        repo.log_artifact(path, artifact_path)


def apply_spooled(
    uri: str, op: dict[str, Any], refs: dict[str, str], clients: dict[str, Any]
) -> Any:
    """Perform one spooled operation against ``uri`` (used by :func:`ablate.tracking.sync.sync`).

    Args:
        uri: the tracking URI to send to.
        op: one spooled operation.
        refs: local reference -> real id, for what the replay already created.
        clients: MlflowClients by URI, kept by the caller for one replay.

    Raises whatever MLflow raises: the replay stops that file and keeps the rest for next time.
    """
    client = clients.get(uri)
    if client is None:
        client = clients[uri] = mlflow_client(uri)

    def real(ref: str) -> str:
        if is_local_ref(ref):
            if ref not in refs:
                raise KeyError(f"{ref} was never created (its creation is still spooled)")
            return refs[ref]
        return ref

    kind = op["op"]
    if kind == "create_experiment":
        exp = client.get_experiment_by_name(op["name"])
        if exp is not None:
            return str(exp.experiment_id)
        location = op.get("artifact_location")
        root = local_artifact_root(uri)
        if location is None and root is not None:  # spooled for a server, replayed to a file
            location = str(Path(root) / op["name"])
        return str(client.create_experiment(op["name"], artifact_location=location))
    if kind == "create_run":
        tags = dict(op.get("tags") or {})
        parent_ref = tags.pop(PARENT_REF_TAG, None)
        if parent_ref:  # the parent was created offline too: link the child now
            tags["mlflow.parentRunId"] = real(parent_ref)
        run = client.create_run(
            real(op["experiment"]),
            run_name=op["run_name"],
            tags=tags,
            start_time=op.get("start_time"),
        )
        return str(run.info.run_id)
    if kind == "log_batch":
        from mlflow.entities import Metric, Param, RunTag

        client.log_batch(
            real(op["run"]),
            metrics=[Metric(k, float(v), int(ts), int(s)) for k, v, ts, s in op["metrics"]],
            params=[Param(k, v) for k, v in (op.get("params") or {}).items()],
            tags=[RunTag(k, v) for k, v in (op.get("tags") or {}).items()],
        )
    elif kind == "update_run":
        client.update_run(real(op["run"]), status=op["status"])
    elif kind == "set_terminated":
        client.set_terminated(real(op["run"]), status=op["status"], end_time=op.get("end_time"))
    elif kind == "log_artifact":
        client.log_artifact(real(op["run"]), op["path"], artifact_path=op.get("artifact_path"))
    elif kind == "set_experiment_tag":
        client.set_experiment_tag(real(op["experiment"]), op["key"], op["value"])
    else:
        raise ValueError(f"unknown spooled operation {kind!r}")
    return None
