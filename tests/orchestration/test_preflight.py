"""The preflight of ``ablate sweep``: every problem at once, nothing dispatched, each need once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ablate_cli import run_ablate

from ablate.execution.runner_profile import load_runner_profile
from ablate.jobs import mmt_needs
from ablate.orchestrate.plan import make_plan
from ablate.orchestrate.preflight import Machine, find_problems, parse_gpu_memory
from ablate.spec.sweep import load_sweep
from ablate.store.results_store import ResultsStore

REPO = Path(__file__).resolve().parents[2]


def ablate(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_ablate(*args, cwd=cwd, env=env)


def offline(tmp_path: Path) -> dict[str, str]:
    """An empty hub cache, the hub off, no GPU: the machine of a new user without weights."""
    hub = str(tmp_path / "hub")
    return {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": hub, "CUDA_VISIBLE_DEVICES": ""}


def test_table3_without_data_or_weights_fails_fast_and_dispatches_nothing(tmp_path):
    out = ablate("sweep", str(REPO / "sweeps/table3.yaml"), cwd=tmp_path, **offline(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    err = out.stderr
    assert "preflight found 7 problem(s); nothing was dispatched:" in err
    assert "data.root (all 11 runs): not set; point it at a ScienceQA folder" in err
    assert "model.llm=meta-llama/Llama-2-7b-hf (runs " in err and "+7 more" in err
    assert "HF_HUB_OFFLINE is set" in err and "huggingface-cli download" in err
    assert "model.vision=diht-vit-l14-336" in err and "set model.vision_path" in err
    assert "model (all 11 runs): real backbones need a GPU, and runner 'local' finds none" in err
    assert "--no-preflight" in err
    assert "11 runs: 11 new; 11 to dispatch" in out.stdout
    records = tmp_path / "runs" / ".store"
    assert not records.exists() or not any(records.rglob("*.json"))


def test_each_problem_names_its_runs_and_what_is_needed(write, tmp_path):
    data = tmp_path / "sqa"
    data.mkdir()
    (data / "problems.json").write_text("{}")
    (data / "pid_splits.json").write_text(json.dumps({"train": [], "val": []}))
    llm = tmp_path / "llama"
    llm.mkdir()
    sweep = write(
        "mine.yaml",
        f"""
        base:
          job: mmt
          data: {{root: {data}}}
          adapter: {{name: bottleneck, dim: 16, groups: 2}}
          model: {{llm_path: {llm}, vision_path: {tmp_path / "vit.pth"}}}
        runs:
          - {{label: small, adapter.dim: 8}}
          - {{label: large, adapter.dim: 16}}
        """,
    )
    out = ablate("sweep", str(sweep), "--runner", "cpu", cwd=tmp_path, **offline(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert f"data.root={data} (all 2 runs): pid_splits.json has no split test" in err
    assert "(it has train, val)" in err
    assert f"model.llm_path={llm} (all 2 runs): no config.json in the directory" in err
    assert f"model.vision_path={tmp_path / 'vit.pth'} (all 2 runs): no such file" in err
    assert "need a GPU" not in err  # the cpu runner: no GPU check
    skipped = ablate(
        "sweep", str(sweep), "--runner", "cpu", "--no-preflight", "--retries", "0",
        cwd=tmp_path, **offline(tmp_path),
    )  # fmt: skip
    assert "preflight" not in skipped.stderr and "2 to dispatch" in skipped.stdout


def test_each_need_is_checked_once_and_a_cached_hub_id_passes(tmp_path, monkeypatch):
    calls: list[object] = []
    real = mmt_needs.check_scienceqa

    def counting(need, machine):
        calls.append(need.value)
        return real(need, machine)

    monkeypatch.setattr(mmt_needs, "check_scienceqa", counting)
    sweep = load_sweep(REPO / "sweeps/table3.yaml")
    entries = make_plan(sweep, ResultsStore(tmp_path / "runs")).to_dispatch()
    machine = Machine(load_runner_profile("cpu"))
    machine.hub_cache = tmp_path / "hub"
    for repo in ("meta-llama/Llama-2-7b-hf", "huggyllama/llama-7b"):
        (machine.hub_cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc").mkdir(
            parents=True
        )
    problems = find_problems(entries, machine)
    assert calls == [None]  # 11 runs, one data folder: one look
    keys = [p.key for p in problems]
    assert "model.llm" not in keys  # cached: no hub probe, no problem
    assert keys.count("data.root") == 1


def test_tiny_scale_needs_nothing_from_the_machine(tmp_path):
    sweep = load_sweep(REPO / "sweeps/table3.yaml", scale="tiny")
    entries = make_plan(sweep, ResultsStore(tmp_path / "runs")).to_dispatch()
    assert find_problems(entries, Machine(load_runner_profile("local"))) == []


def test_a_run_too_big_for_the_runners_gpu_is_a_problem(tmp_path):
    memory = parse_gpu_memory("0, GPU-8f2c0a, 143771\n1, GPU-77aa01, 4096\nbad line\n")
    assert memory == {"0": 143771 / 1024, "GPU-8f2c0a": 143771 / 1024, "1": 4.0, "GPU-77aa01": 4.0}
    sweep = load_sweep(REPO / "sweeps/table3.yaml")
    entries = make_plan(sweep, ResultsStore(tmp_path / "runs")).to_dispatch()[-1:]
    machine = Machine(load_runner_profile("local"))
    machine.gpu_ids, machine.gpu_memory_gib = ["0", "1"], memory  # one small GPU among them
    problems = {p.key: p for p in find_problems(entries, machine)}
    needed = problems["model"].needed
    assert "GiB of GPU memory (the estimate of `ablate plan`), more than the 4.0 GiB" in needed
    machine = Machine(load_runner_profile("local"))
    machine.gpu_ids, machine.gpu_memory_gib = ["0"], memory
    assert "model" not in {p.key for p in find_problems(entries, machine)}
