"""Where tracking goes and what may be sent there: tracking URI, environment, params, secrets.

Tracking is observation only: the results store is the source of truth. So everything here is
defensive: the default store is an embedded SQLite file (nothing to start), a tracking server that
is down costs seconds rather than minutes (short HTTP timeouts, no long retry ladder), and nothing
that looks like a credential is ever sent as a param, tag or artifact.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
RUN_ID_ENV = "ABLATE_MLFLOW_RUN_ID"  # the child run a SLURM task reports its attempt to
EXPERIMENT_ID_ENV = "ABLATE_MLFLOW_EXPERIMENT_ID"
DEFAULT_DB_NAME = "mlflow.db"
SPOOL_DIR_NAME = ".tracking-spool"

# A tracking server that is down must not stall training: one quick try, then spool to disk.
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
MAX_TAG_VALUE = 8000

SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "secrets",
        "password",
        "passwd",
        "pwd",
        "key",
        "apikey",
        "credential",
        "credentials",
        "passphrase",
    }
)
NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})  # the shell's working directories
_URL_PASSWORD = r"://[^/\s:@]+:[^/\s@]+@"  # the user:password@ of a URL
_SECRET_VALUE = re.compile(
    r"(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|"
    rf"{_URL_PASSWORD})"
)
REDACTED = "***"


def default_tracking_uri(project_dir: Path | str | None = None) -> str:
    """``sqlite:///<project>/mlflow.db``, absolute so that every worker finds the same file."""
    base = Path(project_dir) if project_dir is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DB_NAME).resolve()}"


def resolve_tracking_uri(explicit: str | None = None, project_dir: Path | str | None = None) -> str:
    """``--tracking-uri`` if given, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite file."""
    return explicit or os.environ.get(TRACKING_URI_ENV) or default_tracking_uri(project_dir)


def public_uri(uri: str) -> str:
    """``uri`` with the ``user:password@`` of a URL masked (``http://***@host``).

    The only form of a tracking URI that is printed or written to disk (the spool header,
    ``mlflow.json``, the SLURM job file, warnings); the usable one stays in memory and in
    ``$MLFLOW_TRACKING_URI`` for connecting (:func:`usable_uri`).
    """
    return re.sub(_URL_PASSWORD, f"://{REDACTED}@", uri)


def usable_uri(stored: str, explicit: str | None = None) -> str | None:
    """The URI to connect to for a stored one, which may have its credentials masked.

    A stored URI with nothing masked is usable as it is. A masked one is the public form of the
    URI that wrote it: ``explicit`` (``--tracking-uri``) or ``$MLFLOW_TRACKING_URI`` when either
    is that URI with its credentials; ``None`` when neither is (the caller says how to pass it).
    """
    if f"://{REDACTED}@" not in stored:
        return stored
    for candidate in (explicit, os.environ.get(TRACKING_URI_ENV)):
        if candidate and public_uri(candidate) == stored:
            return candidate
    return None


def is_local_uri(uri: str) -> bool:
    """Whether the store is a local file (SQLite or a path), not a server."""
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def local_artifact_root(uri: str) -> str | None:
    """For a SQLite store, artifacts live beside the DB in ``mlartifacts/`` (else the server's)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return str(db.parent / "mlartifacts")
    return None


SETUP_LOGGERS = ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration")


def apply_http_defaults() -> None:
    """Short HTTP timeouts and no retry ladder for MLflow's REST client (unless the user set them).

    MLflow reads these variables per request, so setting them in this process is enough.
    """
    for key, value in HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # MLflow's INFO lines about creating and migrating its database ("Creating initial MLflow
    # database tables...", alembic's steps) are setup chatter on the sweep's output
    for name in SETUP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def is_secret_key(key: str) -> bool:
    """Whether a param/tag name looks like it holds a credential.

    The last word of the last dotted part decides (``HF_TOKEN``, ``data.api_key``,
    ``AWS_SECRET``, ``db_password``), so ``eval.max_new_tokens`` or ``adapter.dim`` are kept.
    """
    if key in NOT_SECRET_NAMES:
        return False
    words = re.split(r"[_\-\s]+", key.rsplit(".", 1)[-1].lower())
    return words[-1] in SECRET_WORDS or "password" in words


# (a copy of the environment it was read from, how many remembered values, the secret values)
_secrets_seen: tuple[dict[Any, Any], int, tuple[str, ...]] | None = None
# Secret values of environments jobs run with but this process does not (a runner profile's
# ``env:``, an attempt's extra environment): remembered for the life of the process.
_remembered: set[str] = set()


def _environment() -> Mapping[Any, Any]:
    """This process's environment as a plain dict, to tell cheaply whether it changed.

    ``os.environ``'s raw bytes dict when there is one: comparing it with the copy taken at the
    last collection runs in C, in a microsecond or two for a hundred variables; classifying every
    name (:func:`is_secret_key`) is what costs, so that is done only when the two differ.
    """
    raw = getattr(os.environ, "_data", None)
    return raw if isinstance(raw, dict) else dict(os.environ)


def _secret_values_of(env: Mapping[str, str]) -> set[str]:
    return {v for k, v in env.items() if is_secret_key(str(k)) and len(str(v)) >= 8}


def remember_secrets(env: Mapping[str, str]) -> None:
    """Mask the secret-named values of ``env`` too, from now on, in this process.

    A job's environment is the union of the orchestrator's, its runner profile's ``env:`` and
    the attempt's own; the orchestrator masks the logs and artifacts it uploads, so it must know
    the secrets it handed to jobs without having them in its own environment. Called where a
    profile becomes an executor and where an attempt's environment is built.
    """
    _remembered.update(_secret_values_of(env))


def secret_env_values() -> tuple[str, ...]:
    """Values of the secret-named environment variables (``HF_TOKEN`` ...), longest first.

    This process's environment and every environment handed to a job (:func:`remember_secrets`).
    Collected once per process and again whenever either changes (a variable set, changed or
    removed): tracking a run masks ~100 values, and scanning ``os.environ`` for each of them was
    a third of the tracking hooks' time.
    """
    global _secrets_seen
    environment = _environment()
    seen = _secrets_seen
    if seen is not None and seen[0] == environment and seen[1] == len(_remembered):
        return seen[2]
    snapshot = dict(environment)  # before reading: a change meanwhile shows at the next call
    count = len(_remembered)
    values = _secret_values_of(os.environ) | _remembered
    _secrets_seen = (snapshot, count, tuple(sorted(values, key=len, reverse=True)))
    return _secrets_seen[2]


def redact_value(value: str) -> str:
    """Mask token-shaped substrings, URL passwords and the values of secret env variables."""
    for secret in secret_env_values():
        if secret in value:
            value = value.replace(secret, REDACTED)
    return _SECRET_VALUE.sub(
        lambda m: f"://{REDACTED}@" if m.group(0).startswith("://") else REDACTED, value
    )


def redact(mapping: Mapping[str, Any]) -> dict[str, str]:
    """String values with secret-looking keys dropped and secret-looking values masked."""
    out = {}
    for key, value in mapping.items():
        if is_secret_key(str(key)):
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        out[str(key)] = redact_value(text)
    return out


def redact_tree(tree: Any) -> Any:
    """A nested spec with secret-looking keys removed and values masked (for artifacts)."""
    if isinstance(tree, dict):
        return {k: redact_tree(v) for k, v in tree.items() if not is_secret_key(str(k))}
    if isinstance(tree, list):
        return [redact_tree(v) for v in tree]
    if isinstance(tree, str):
        return redact_value(tree)
    return tree


def flatten_params(spec: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The nested spec as dotted MLflow params (lists as JSON), redacted and size-limited."""
    flat: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        else:
            flat[path] = node

    walk(dict(spec), prefix)
    params = redact(flat)
    return {k[:250]: v[:MAX_PARAM_VALUE] for k, v in params.items()}
