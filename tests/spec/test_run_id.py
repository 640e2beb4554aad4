"""Run identity: stable across processes and spellings, sensitive to semantics only."""

from __future__ import annotations

import json
import subprocess
import sys

from ablate.spec.run_spec import build_run_spec, load_run_spec
from ablate.spec.sweep import load_sweep


def spec(**train):
    return build_run_spec({"job": "linear-fit", "seed": 0, "train": train})


def test_same_spec_same_id_in_another_process():
    here = spec(lr=0.001).run_id
    code = (
        "from ablate.spec.run_spec import build_run_spec as b;"
        "print(b({'job': 'linear-fit', 'seed': 0, 'train': {'lr': 0.001}}).run_id)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout.strip()
    assert here == other
    assert len(here) == 12 and int(here, 16) >= 0


def test_number_spellings_and_key_order_do_not_matter(write):
    a = write(
        "a.yaml",
        """
        base: {job: linear-fit, train: {lr: 1e-3, steps: 5}, data: {noise: 0.1}}
    """,
    )
    b = write(
        "b.yaml",
        """
        base: {data: {noise: 1.0e-1}, train: {steps: 5, lr: 0.001}, job: linear-fit}
    """,
    )
    assert load_sweep(a).runs[0].spec.run_id == load_sweep(b).runs[0].spec.run_id


def test_defaults_written_out_do_not_change_id():
    assert spec().run_id == spec(steps=200, lr=0.05).run_id


def test_every_semantic_change_changes_id():
    base = spec()
    assert spec(lr=0.051).run_id != base.run_id
    assert spec(steps=201).run_id != base.run_id
    assert build_run_spec({"job": "linear-fit", "seed": 1}).run_id != base.run_id


def test_spec_json_round_trip(tmp_path):
    s = spec(lr=0.2)
    path = tmp_path / "spec.json"
    path.write_text(s.to_json())
    again = load_run_spec(path)
    assert again == s and again.run_id == s.run_id
    assert json.loads(path.read_text())["run_id"] == s.run_id


def test_hand_edited_spec_json_is_refused(tmp_path):
    s = spec(lr=0.2)
    data = json.loads(s.to_json())
    data["train"]["lr"] = 0.3
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    try:
        load_run_spec(path)
    except Exception as err:  # noqa: BLE001 - asserting on the message
        assert "records run_id" in str(err)
    else:
        raise AssertionError("edited spec accepted")


def test_flat_uses_dotted_keys():
    flat = spec(lr=0.2).flat()
    assert flat["train.lr"] == 0.2 and flat["job"] == "linear-fit"
