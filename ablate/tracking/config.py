"""Where tracking goes and what may be sent there: tracking URI, environment, params, secrets.

Tracking is observation only: the results store is the source of truth. So everything here is
defensive: the default store is an embedded SQLite file (nothing to start), a tracking server that
is down costs seconds rather than minutes (short HTTP timeouts, no long retry ladder), and nothing
that looks like a credential is ever sent as a param, tag or artifact.
"""

from __future__ import annotations

import json
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
_SECRET_VALUE = re.compile(
    r"(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|"
    r"://[^/\s:@]+:[^/\s@]+@)"
)
REDACTED = "***"


def default_tracking_uri(project_dir: Path | str | None = None) -> str:
    """``sqlite:///<project>/mlflow.db``, absolute so that every worker finds the same file."""
    base = Path(project_dir) if project_dir is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DB_NAME).resolve()}"


def resolve_tracking_uri(explicit: str | None = None, project_dir: Path | str | None = None) -> str:
    """``--tracking-uri`` if given, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite file."""
    return explicit or os.environ.get(TRACKING_URI_ENV) or default_tracking_uri(project_dir)


def is_local_uri(uri: str) -> bool:
    """Whether the store is a local file (SQLite or a path), not a server."""
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def local_artifact_root(uri: str) -> str | None:
    """For a SQLite store, artifacts live beside the DB in ``mlartifacts/`` (else the server's)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return str(db.parent / "mlartifacts")
    return None


def apply_http_defaults() -> None:
    """Short HTTP timeouts and no retry ladder for MLflow's REST client (unless the user set them).

    MLflow reads these variables per request, so setting them in this process is enough.
    """
    for key, value in HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def is_secret_key(key: str) -> bool:
    """Whether a param/tag name looks like it holds a credential.

    The last word of the last dotted part decides (``HF_TOKEN``, ``data.api_key``,
    ``AWS_SECRET``, ``db_password``), so ``eval.max_new_tokens`` or ``adapter.dim`` are kept.
    """
    words = re.split(r"[_\-\s]+", key.rsplit(".", 1)[-1].lower())
    return words[-1] in SECRET_WORDS or "password" in words


# (a copy of the environment it was read from, its secret values longest first)
_secrets_seen: tuple[dict[Any, Any], tuple[str, ...]] | None = None


def _environment() -> Mapping[Any, Any]:
    """This process's environment as a plain dict, to tell cheaply whether it changed.

    ``os.environ``'s raw bytes dict when there is one: comparing it with the copy taken at the
    last collection runs in C, in a microsecond or two for a hundred variables; classifying every
    name (:func:`is_secret_key`) is what costs, so that is done only when the two differ.
    """
    raw = getattr(os.environ, "_data", None)
    return raw if isinstance(raw, dict) else dict(os.environ)


def secret_env_values() -> tuple[str, ...]:
    """Values of the secret-named environment variables (``HF_TOKEN`` ...), longest first.

    Collected once per process and again whenever the environment changes (a variable set,
    changed or removed): tracking a run masks ~100 values, and scanning ``os.environ`` for each
    of them was a third of the tracking hooks' time.
    """
    global _secrets_seen
    environment = _environment()
    seen = _secrets_seen
    if seen is not None and seen[0] == environment:
        return seen[1]
    snapshot = dict(environment)  # before reading: a change meanwhile shows at the next call
    values = tuple(
        sorted(
            (v for k, v in os.environ.items() if is_secret_key(k) and len(v) >= 8),
            key=len,
            reverse=True,
        )
    )
    _secrets_seen = (snapshot, values)
    return values


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
