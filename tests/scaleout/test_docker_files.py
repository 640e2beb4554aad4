"""``docker/``: the GPU image installs the project the README's way; the compose file is sound.

No Docker engine runs here, so the files are parsed: the Dockerfile's pip command must be the
README's (same torch/torchvision pins as pyproject.toml, the package itself, an extra only if
pyproject defines it), everything it copies must exist, and its CUDA base must match the torch
build. The compose file must install the same MLflow requirement as pyproject.toml, talk to its
PostgreSQL through the driver it installs, and create the Optuna database.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def requirement(name: str) -> str:
    """The requirement string of ``name`` in pyproject's dependencies (``torch==2.14.1``)."""
    for dep in pyproject()["project"]["dependencies"]:
        if re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower() == name.lower():
            return dep.replace(" ", "")
    raise AssertionError(f"{name} is not a dependency in pyproject.toml")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [
        line for line in (DOCKER / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]  # fmt: skip
    text = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def pip_installs(command: str) -> list[list[str]]:
    """The argument lists of every ``pip install`` in a shell command."""
    found = []
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                found.append([w for w in words[i + 2 :] if not w.startswith("--")])
    return found


def readme_install() -> list[str]:
    """The README's install command (the first pip install pinning torch)."""
    for line in (REPO / "README.md").read_text().splitlines():
        if "pip install" in line and "torch==" in line:
            for args in pip_installs(line):
                if any(a.startswith("torch==") for a in args):
                    return args
    raise AssertionError("README.md has no `pip install torch==...` command")


def test_dockerfile_installs_the_project_the_readme_way():
    runs = [args for word, args in dockerfile_instructions() if word == "RUN"]
    installs = [a for cmd in runs for a in pip_installs(cmd) if any("torch" in w for w in a)]
    assert len(installs) == 1, installs
    [args] = installs
    pins = {requirement("torch"), requirement("torchvision")}
    assert pins <= set(args), f"image pins {args}, pyproject pins {pins}"
    assert pins <= set(readme_install()), "the README pins differ from pyproject.toml"
    target = args[args.index("-e") + 1] if "-e" in args else args[-1]
    package, _, extras = target.partition("[")
    assert package == ".", f"the image must install the project itself, got {target!r}"
    defined = set(pyproject()["project"].get("optional-dependencies", {}))
    for extra in filter(None, extras.rstrip("]").split(",")):
        assert extra in defined, f"extra {extra!r} is not defined in pyproject.toml"
    readme_target = readme_install()[readme_install().index("-e") + 1]
    assert readme_target.partition("[")[0] == ".", "README installs the checkout editable"


def test_dockerfile_copies_what_the_install_needs_and_matches_the_torch_cuda():
    instructions = dockerfile_instructions()
    copied = set()
    for word, args in instructions:
        if word == "COPY":
            *sources, _dest = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                copied.add(source.rstrip("/"))
    readme = pyproject()["project"]["readme"]
    assert {"pyproject.toml", readme, "ablate"} <= copied
    [base] = [args for word, args in instructions if word == "FROM"]
    match = re.match(r"nvidia/cuda:(\d+\.\d+)", base)
    assert match, f"base image {base!r} is not an nvidia/cuda image"
    torch = pytest.importorskip("torch")
    if torch.version.cuda:
        assert torch.version.cuda.startswith(match.group(1)), (
            f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, base is {base}"
        )
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "runs", ".git"} <= set(ignored), "the build context must skip them"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_runs_mlflow_on_postgres_with_pyprojects_mlflow():
    services = compose()["services"]
    assert set(services) == {"postgres", "mlflow"}
    postgres, mlflow = services["postgres"], services["mlflow"]
    shell, flag, command = shlex.split(mlflow["command"])
    assert (shell, flag) == ("sh", "-c")
    [args] = [a for a in pip_installs(command) if any(w.startswith("mlflow") for w in a)]
    assert requirement("mlflow") in args, f"{args} vs pyproject {requirement('mlflow')}"
    assert any(a.startswith("psycopg2-binary") for a in args)
    uri = re.search(r"--backend-store-uri\s+(\S+)", command).group(1)
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which the image does not install
    assert uri.startswith("postgresql+psycopg2://"), uri
    env = postgres["environment"]
    assert uri.startswith(f"postgresql+psycopg2://{env['POSTGRES_USER']}:")
    assert uri.endswith(f"@postgres/{env['POSTGRES_DB']}")
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "5000:5000" in mlflow["ports"] and "5432:5432" in postgres["ports"]
    declared = set(compose()["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DOCKER / source).is_file(), f"{volume}: no such file in docker/"
            else:
                assert source in declared, f"{volume}: volume {source!r} is not declared"


def test_compose_creates_the_optuna_database_for_the_same_role():
    postgres = compose()["services"]["postgres"]
    [init] = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    sql = (DOCKER / init.split(":")[0]).read_text()
    role = postgres["environment"]["POSTGRES_USER"]
    assert re.search(rf"CREATE DATABASE optuna OWNER {role};", sql)
