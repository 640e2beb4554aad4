"""Hostile JSON input: deep nesting and bytes that are not UTF-8 end in one clear error.

Reproduces issue 18 item 7: ``[`` x 100000 in a predictions file, in one JSONL value, in
``problems.json`` or ``pid_splits.json`` was a ``RecursionError`` traceback, and predictions that
are not UTF-8 gave a codec error naming no file. Each hostile file goes through the command line
(``ablate.cli.main``, the console-script entry, in process; a few in a real subprocess too): exit
2, no traceback, the message names the file (and the line of a JSONL file), what was wrong and
what is allowed. The depth pre-scan itself is checked against the parser on generated documents.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import run_cli

from ablate import cli
from ablate.data.scienceqa import load_official
from ablate.json_input import MAX_DEPTH, JsonInputError, deeper_than, read_jsonl_file

DEEP = 100_000
PROBLEMS = {
    "1": {"question": "Which is a mammal?", "choices": ["cat", "trout"], "answer": 0, "hint": "",
          "image": None, "subject": "natural science", "grade": "grade3", "split": "test"},
    "2": {"question": "2+2?", "choices": ["3", "4", "5"], "answer": 1, "hint": "[x] \"q\" \\",
          "image": None, "subject": "language science", "grade": "grade8", "split": "test"},
}  # fmt: skip
SPLITS = {"train": [], "test": ["1", "2"]}


def _data(root: Path) -> Path:
    root.mkdir()
    (root / "problems.json").write_text(json.dumps(PROBLEMS))
    (root / "pid_splits.json").write_text(json.dumps(SPLITS))
    return root


def ablate_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the console-script entry point in process; its exit code and all it printed."""
    monkeypatch.setattr(sys, "argv", ["ablate", *args])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    out = capsys.readouterr()
    code = stop.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out.out + out.err


# name -> (file to write, its bytes, what the message must say)
HOSTILE: dict[str, tuple[str, bytes, list[str]]] = {
    "preds_deep_array": ("preds.json", b"[" * DEEP, ["preds.json:", f"at most {MAX_DEPTH}"]),
    "preds_deep_object": (
        "preds.json",
        b'{"a": ' * DEEP,
        ["preds.json:", "nested more than", f"at most {MAX_DEPTH}"],
    ),
    "preds_deep_value": (
        "preds.json",
        b'{"1": ' + b"[" * DEEP + b"0" + b"]" * DEEP + b"}",
        ["preds.json:", f"at most {MAX_DEPTH}"],
    ),
    "jsonl_deep_value": (
        "preds.jsonl",
        b'{"pid": "1", "pred": 0}\n\n{"pid": "2", "pred": ' + b"[" * DEEP + b"}\n",
        ["preds.jsonl:3:", f"at most {MAX_DEPTH}", "expected an object with 'pid' per line"],
    ),
    "preds_latin1": (
        "preds.json",
        '{"1": 0, "2": "résumé"}'.encode("latin-1"),
        ["preds.json:", "not UTF-8", "byte 0xe9 at line 1, column 17", "saved as UTF-8"],
    ),
    "jsonl_latin1_line2": (
        "preds.jsonl",
        b'{"pid": "1", "pred": 0}\n{"pid": "2", "raw": "\xe9"}\n',
        ["preds.jsonl:", "not UTF-8", "line 2", "saved as UTF-8"],
    ),
    "preds_utf16": (
        "preds.json",
        '{"1": 0}'.encode("utf-16"),
        ["preds.json:", "not UTF-8", "byte 0xff"],
    ),
    "preds_huge_integer": (
        "preds.json",
        b'{"1": ' + b"9" * 5000 + b"}",
        ["preds.json:", "not valid JSON", "4300 digits"],
    ),
    "problems_deep": ("problems.json", b"[" * DEEP, ["problems.json:", f"at most {MAX_DEPTH}"]),
    "problems_deep_choices": (
        "problems.json",
        json.dumps({"1": {**PROBLEMS["1"], "choices": "@"}})
        .replace('"@"', "[" * 200 + "]" * 200)
        .encode(),
        ["problems.json:", f"at most {MAX_DEPTH}", "the ScienceQA problems"],
    ),
    "problems_latin1": (
        "problems.json",
        json.dumps({"1": {**PROBLEMS["1"], "question": "café?"}}, ensure_ascii=False).encode(
            "latin-1"
        ),
        ["problems.json:", "not UTF-8"],
    ),
    "splits_deep": (
        "pid_splits.json",
        b'{"test": ' + b"[" * DEEP,
        ["pid_splits.json:", f"at most {MAX_DEPTH}", "the ScienceQA splits"],
    ),
    "splits_binary": ("pid_splits.json", b"\x00\xff\xfe\x9c", ["pid_splits.json:", "not UTF-8"]),
    "captions_deep": (
        "captions.json",
        b'{"captions": ' + b"{" * DEEP,
        ["captions.json:", f"at most {MAX_DEPTH}"],
    ),
}


DATA_FILES = ("problems.json", "pid_splits.json", "captions.json")


def _write_case(tmp_path: Path, case: str) -> tuple[Path, Path, list[str]]:
    """The data folder and predictions file of ``case``, with its hostile file in place."""
    name, raw, expected = HOSTILE[case]
    data = _data(tmp_path / "sqa")
    preds = tmp_path / ("preds.json" if name in DATA_FILES else name)
    preds.write_text(json.dumps({"1": 0, "2": 1}))
    (data / name if name in DATA_FILES else preds).write_bytes(raw)
    return data, preds, expected


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_json_through_the_cli_is_one_clear_error(case, tmp_path, monkeypatch, capsys):
    data, preds, expected = _write_case(tmp_path, case)
    code, out = ablate_main(monkeypatch, capsys, "score", str(preds), "--data", str(data))
    assert code == 2, out
    assert "Traceback" not in out and "RecursionError" not in out, out
    assert out.startswith("error: ") and out.count("\n") == 1, out  # one line
    for text in expected:
        assert text in out, (text, out)


@pytest.mark.parametrize("case", ["preds_deep_array", "jsonl_deep_value", "splits_deep"])
def test_hostile_json_in_a_real_process(case, tmp_path):
    data, preds, expected = _write_case(tmp_path, case)
    proc = run_cli("score", str(preds), "--data", str(data), cwd=tmp_path, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    for text in expected:
        assert text in out, (text, out)


def test_a_byte_order_mark_is_accepted(tmp_path, monkeypatch, capsys):
    data = _data(tmp_path / "sqa")
    preds = tmp_path / "preds.json"
    preds.write_bytes(b"\xef\xbb\xbf" + json.dumps({"1": 0, "2": 1}).encode())
    code, out = ablate_main(monkeypatch, capsys, "score", str(preds), "--data", str(data))
    assert code == 0, out
    assert "| 100.00 |" in out


def test_depth_at_the_limit_is_read_and_one_more_is_refused(tmp_path):
    root = _data(tmp_path / "sqa")
    ok = json.dumps({"1": {**PROBLEMS["1"], "solution": "@"}})
    inner = MAX_DEPTH - 2  # the file's object and the problem's object are two levels
    (root / "problems.json").write_text(ok.replace('"@"', "[" * inner + "]" * inner))
    (root / "pid_splits.json").write_text(json.dumps({"test": ["1"]}))
    assert [p.pid for p in load_official(root, "test")] == ["1"]
    inner += 1
    (root / "problems.json").write_text(ok.replace('"@"', "[" * inner + "]" * inner))
    with pytest.raises(JsonInputError, match=f"problems.json: .*at most {MAX_DEPTH}"):
        load_official(root, "test")


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"pid": "1"}\n\n{"pid": 2,,}\n')
    with pytest.raises(JsonInputError, match=r"p\.jsonl:3: not valid JSON \(.* column 11\)"):
        read_jsonl_file(path, "an object")


# --------------------------------------------------- the pre-scan agrees with the real depth
def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\\n\t/aé😀,:')), max_size=12)
documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), tricky_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(tricky_text, inner, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(doc=documents, indent=st.sampled_from([None, 1]), ascii_only=st.booleans())
def test_prescan_depth_is_exact_on_valid_json(doc, indent, ascii_only):
    """Strings full of brackets, quotes and backslashes never fool the pre-scan."""
    raw = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    depth = _depth(doc)
    assert not deeper_than(raw, depth)
    if depth:
        assert deeper_than(raw, depth - 1)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(raw=st.binary(max_size=200) | st.text(alphabet='[]{}"\\ ,:1a', max_size=200).map(str.encode))
def test_prescan_never_lets_the_parser_recurse_past_the_limit(raw):
    """On any bytes, a document the pre-scan passes at depth 3 never parses deeper than 3."""
    if deeper_than(raw, 3):
        return
    try:
        value = json.loads(raw.decode("utf-8"))
    except ValueError:
        return
    assert _depth(value) <= 3


@st.composite
def deep_documents(draw) -> bytes:
    """Arrays and objects nested 65 to 5000 deep, cut short or closed, with junk around them."""
    depth = draw(st.integers(MAX_DEPTH + 1, 5000))
    opens = draw(st.lists(st.sampled_from(["[", '{"k": ', '["a]", ', '{"\\"[": ']), min_size=1))
    head = "".join(opens[i % len(opens)] for i in range(depth))
    closes = "".join("]" if opens[i % len(opens)].startswith("[") else "}" for i in range(depth))
    tail = draw(st.sampled_from(["", "0" + closes[::-1], "0" + closes[::-1][: depth // 2]]))
    return draw(st.sampled_from(["", '{"1": ', "\n"])).encode() + (head + tail).encode()


FUZZ_ROLES = ["preds.json", "preds.jsonl", "problems.json", "pid_splits.json", "captions.json"]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(raw=deep_documents(), role=st.sampled_from(FUZZ_ROLES))
def test_fuzzed_deep_files_are_clear_errors_naming_the_file(raw, role):
    """Whatever the shape, a file nested past the limit is refused before parsing, by name."""
    from ablate.evaluation.predictions import score_predictions_file

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = _data(tmp_path / "sqa")
        preds = tmp_path / ("preds.json" if role in DATA_FILES else role)
        preds.write_text(json.dumps({"1": 0, "2": 1}))
        if role == "preds.jsonl":
            raw = b'{"pid": "1", "pred": 0}\n' + raw
        (data / role if role in DATA_FILES else preds).write_bytes(raw)
        with pytest.raises(ValueError) as caught:
            score_predictions_file(preds, data, "test")
    assert role in str(caught.value) and "nested more than" in str(caught.value), caught.value
