"""Bad input, fuzzed: every malformed file ends in one clear error, never another exception.

Property-based (hypothesis). Each loader has a contract for bad input:

- sweep YAML and runner profiles: :class:`ablate.errors.AblateError` (``SpecError``);
- predictions files and ScienceQA files: ``ValueError`` / ``FileNotFoundError`` with a message
  naming the file (the CLI maps those to exit 2 without a traceback).

Anything else escaping a loader (``TypeError``, ``KeyError``, ``AttributeError``, ...) is a bug:
the user would see a traceback. A few mutated files also go through the real CLI
(``ablate sweep FILE --dry-run``): non-zero exit, no "Traceback", no store written.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import REPO, run_cli

from ablate.data.scienceqa import load_official
from ablate.errors import AblateError
from ablate.evaluation.predictions import read_predictions
from ablate.execution.runner_profile import load_runner_profile, parse_runner_profile
from ablate.spec.sweep import load_sweep

SHIPPED = REPO / "sweeps"
# derandomized: the same examples on every CI run (explore with --hypothesis-seed=N locally)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SMALL_SWEEP: dict[str, Any] = {
    "name": "fuzzed",
    "base": {
        "job": "linear-fit",
        "train": {"steps": 5, "batch_size": 4},
        "data": {"n_features": 3},
    },
    "grid": {"train.lr": [0.01, 0.05]},
    "zip": {"data.noise": [0.1, 0.2], "train.steps": [5, 6]},
    "exclude": [{"train.lr": 0.05, "data.noise": 0.2}],
    "seeds": [0, 1],
    "scales": {"tiny": {"train.steps": 2}},
}

# values of every type a YAML document can hold, and some that tend to break code
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["../x", "a/b", "", " ", "~", "${HOME}", "1e-3", "nan", ".inf", "-1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested dict/list document."""
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, val in tree.items():
            out += _paths(val, (*prefix, key))
    elif isinstance(tree, list):
        for i, val in enumerate(tree):
            out += _paths(val, (*prefix, i))
    return out


def _parent(tree: Any, path: tuple) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


@st.composite
def mutated(draw, doc: dict[str, Any]) -> Any:
    """A document one to three mutations away from ``doc``."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc) if isinstance(doc, dict) else []
        kind = draw(st.sampled_from(["set", "delete", "unknown", "nest", "replace"]))
        if kind == "replace" or not paths:
            return draw(values)
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        if kind == "set":
            parent[path[-1]] = draw(values)
        elif kind == "delete":
            del parent[path[-1]]
        elif kind == "unknown" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif kind == "nest":
            depth = draw(st.integers(1, 60))
            node: Any = draw(scalars)
            for _ in range(depth):
                node = {"k": node} if draw(st.booleans()) else [node]
            parent[path[-1]] = node
    return doc


def _expect_clear(fn, *args, allowed=(AblateError,), **kw) -> None:
    """Call a loader: success, or one of the allowed errors with a non-empty message."""
    try:
        fn(*args, **kw)
    except allowed as err:
        assert str(err).strip(), f"{type(err).__name__} without a message"
    # any other exception propagates and fails the test with its traceback


def _write_yaml(path: Path, doc: Any) -> None:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


# ------------------------------------------------------------------------------- sweep YAML
def test_unmutated_documents_load(tmp_path):
    """The fuzzers start from valid documents, so mutations land near real ones."""
    path = tmp_path / "fuzzed.yaml"
    _write_yaml(path, SMALL_SWEEP)
    assert len(load_sweep(path, scale="tiny").runs) == 6
    parse_runner_profile(PROFILE, name="cpu", source="cpu.yaml")
    (tmp_path / "problems.json").write_text(json.dumps(GOOD_PROBLEMS))
    (tmp_path / "pid_splits.json").write_text(json.dumps(GOOD_SPLITS))
    assert [p.pid for p in load_official(tmp_path, "train")] == ["1", "2"]


@FUZZ
@given(doc=mutated(SMALL_SWEEP), scale=st.sampled_from([None, "tiny"]))
def test_mutated_small_sweep_loads_or_raises_spec_error(doc, scale):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.yaml"
        _write_yaml(path, doc)
        _expect_clear(load_sweep, path, scale=scale)


SHIPPED_DOCS = {p.name: yaml.safe_load(p.read_text()) for p in sorted(SHIPPED.glob("*.yaml"))}


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(SHIPPED_DOCS)))
def test_mutated_shipped_sweeps_load_or_raise_spec_error(data, name):
    doc = data.draw(mutated(SHIPPED_DOCS[name]))
    with tempfile.TemporaryDirectory() as tmp:
        for other in SHIPPED.glob("*.yaml"):  # keep `extends: _paper.yaml` resolvable
            shutil.copy(other, Path(tmp) / other.name)
        path = Path(tmp) / name
        _write_yaml(path, doc)
        _expect_clear(load_sweep, path, scale=data.draw(st.sampled_from([None, "tiny"])))


def _expect_clear_on_bytes(raw: bytes, name: str, fn, **kwargs) -> None:
    """Write ``raw`` to a file called ``name`` and expect ``fn(path)`` to fail clearly."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(raw)
        _expect_clear(fn, path, **kwargs)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_as_sweep_raise_spec_error(raw):
    _expect_clear_on_bytes(raw, "bytes.yaml", load_sweep)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("{}[]:,-!&*|>'\"#%@` \n\tab1.")), max_size=120))
def test_yaml_syntax_soup_raises_spec_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "soup.yaml"
        path.write_text("name: soup\n" + text, encoding="utf-8")
        _expect_clear(load_sweep, path)


def test_deeply_nested_sweep_is_a_clear_error(tmp_path):
    depth = 5000  # deeper than Python's recursion limit
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\nbase: " + "[" * depth + "]" * depth + "\n")
    _expect_clear(load_sweep, path)
    path.write_text(
        "name: deep\nbase:\n  job: linear-fit\n  config: " + "{a: " * 200 + "1" + "}" * 200 + "\n"
    )
    with pytest.raises(AblateError):
        load_sweep(path)


def test_adapter_name_that_is_a_list_is_a_clear_error(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nbase: {job: mmt, adapter: {name: [router], dim: 8}}\n")
    with pytest.raises(AblateError, match="adapter"):
        load_sweep(path)


# ---------------------------------------------------------------------------- runner profiles
PROFILE = yaml.safe_load((REPO / "runners" / "cpu.yaml").read_text())


@FUZZ
@given(doc=mutated(PROFILE))
def test_mutated_runner_profile_parses_or_raises_spec_error(doc):
    _expect_clear(parse_runner_profile, doc, name="fuzzed", source="fuzzed.yaml")


@FUZZ
@given(raw=st.text(max_size=200).map(str.encode))
def test_runner_profile_file_of_garbage_raises_spec_error(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.yaml"
        path.write_bytes(raw)
        _expect_clear(load_runner_profile, path)


def test_runner_profile_that_is_not_utf8_raises_spec_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\x80\xff executor: local\n")
    with pytest.raises(AblateError):
        load_runner_profile(path)


# --------------------------------------------------------------------------- predictions files
DATA_ERRORS = (ValueError, FileNotFoundError, AblateError)
pred_docs = st.one_of(
    st.dictionaries(st.text(max_size=6), values, max_size=5),
    st.fixed_dictionaries({"results": st.dictionaries(st.text(max_size=6), values, max_size=5)}),
    st.lists(values, max_size=4),
    values,
)


@FUZZ
@given(doc=pred_docs)
def test_predictions_json_reads_or_raises_value_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preds.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        _expect_clear(read_predictions, path, allowed=DATA_ERRORS)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(
                    ["pid", "question_id", "pred", "prediction", "output", "answer", "raw", "text"]
                ),
                values,
                max_size=4,
            ),
            values,
            st.text(max_size=30),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_predictions_jsonl_reads_or_raises_value_error(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preds.jsonl"
        text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
        path.write_text(text, encoding="utf-8")
        _expect_clear(read_predictions, path, allowed=DATA_ERRORS)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_predictions_of_random_bytes_raise_value_error(raw):
    _expect_clear_on_bytes(raw, "preds.json", read_predictions, allowed=DATA_ERRORS)


# ------------------------------------------------------------------------ ScienceQA files
GOOD_PROBLEMS = {
    "1": {
        "question": "Which is a mammal?",
        "choices": ["cat", "trout"],
        "answer": 0,
        "hint": "",
        "image": None,
        "subject": "natural science",
        "grade": "grade3",
        "split": "train",
        "task": "closed choice",
        "category": "c",
        "skill": "s",
    },
    "2": {
        "question": "2+2?",
        "choices": ["3", "4", "5"],
        "answer": 1,
        "hint": "math",
        "image": None,
        "subject": "language science",
        "grade": "grade8",
        "split": "train",
    },
}
GOOD_SPLITS = {"train": ["1", "2"], "test": []}


@FUZZ
@given(problems=mutated(GOOD_PROBLEMS), splits=mutated(GOOD_SPLITS), placeholder=st.booleans())
def test_mutated_scienceqa_loads_or_raises_value_error(problems, splits, placeholder):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "problems.json").write_text(json.dumps(problems))
        (root / "pid_splits.json").write_text(json.dumps(splits))
        _expect_clear(
            load_official, root, "train", image_placeholder=placeholder, allowed=DATA_ERRORS
        )


@FUZZ
@given(raw=st.binary(max_size=200), which=st.sampled_from(["problems.json", "pid_splits.json"]))
def test_scienceqa_file_of_random_bytes_raises_value_error(raw, which):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "problems.json").write_text(json.dumps(GOOD_PROBLEMS))
        (root / "pid_splits.json").write_text(json.dumps(GOOD_SPLITS))
        (root / which).write_bytes(raw)
        _expect_clear(load_official, root, "train", allowed=DATA_ERRORS)


# ------------------------------------------------------------------------- through the CLI
CLI_CASES = {
    "wrong_type": {**SMALL_SWEEP, "seeds": "zero"},
    "unknown_key": {**SMALL_SWEEP, "gird": {"train.lr": [1]}},
    "deleted_job": {**SMALL_SWEEP, "base": {"train": SMALL_SWEEP["base"]["train"]}},
    "bad_value": {**SMALL_SWEEP, "grid": {"data.n_features": [-3, "many"]}},
    "not_a_mapping": [1, 2, 3],
    "python_tag": "!!python/object/apply:os.system ['touch pwned']\n",  # cwd is tmp_path
    "binary": b"\x00\xff\xfe name: \x9c\n",
    "deep": "name: deep\nbase: " + "[" * 3000 + "]" * 3000 + "\n",
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_dry_run_on_bad_sweep_exits_cleanly_and_writes_nothing(case, tmp_path):
    doc = CLI_CASES[case]
    path = tmp_path / "bad.yaml"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    elif isinstance(doc, str):
        path.write_text(doc)
    else:
        _write_yaml(path, doc)
    runs = tmp_path / "runs"
    proc = run_cli(
        "sweep",
        str(path),
        "--dry-run",
        "--runs-dir",
        str(runs),
        "--no-tracking",
        cwd=tmp_path,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    assert "error" in out.lower(), out
    assert not runs.exists() or not any(runs.rglob("*.json")), sorted(runs.rglob("*"))
    assert not (tmp_path / "pwned").exists()
