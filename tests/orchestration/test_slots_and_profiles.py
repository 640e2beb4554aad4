"""GPU discovery and leasing (fake device lists), CPU slots, runner profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import (  # noqa: F401 (fixtures used by name)
    runs_fixture,
    store_fixture,
    worker_can_import_quick_job,
)

from ablate.errors import SpecError
from ablate.execution.base import AttemptRequest
from ablate.execution.inline import InlineExecutor
from ablate.execution.local import LocalExecutor
from ablate.execution.registry import make_executor
from ablate.execution.runner_profile import (
    BUILTIN_PROFILES,
    load_runner_profile,
    parse_runner_profile,
)
from ablate.execution.slots import (
    Slot,
    SlotPool,
    discover_gpus,
    parse_nvidia_smi,
    parse_visible_devices,
)
from ablate.store import ResultsStore

REPO = Path(__file__).resolve().parents[2]

SMI = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1f1e2a3b-0000-1111-2222-333344445555)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2f1e2a3b-0000-1111-2222-333344445555)
GPU 3: NVIDIA H100 80GB HBM3 (UUID: GPU-3f1e2a3b-0000-1111-2222-333344445555)
"""


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0,1", ["0", "1"]),
        (" 2 , 5", ["2", "5"]),
        ("", []),
        ("-1", []),
        ("0,-1,2", ["0"]),
        ("GPU-abc,GPU-def", ["GPU-abc", "GPU-def"]),
    ],
)
def test_visible_devices_parsed_like_cuda(value, expected):
    assert parse_visible_devices(value) == expected


def test_nvidia_smi_listing_parsed():
    assert parse_nvidia_smi(SMI) == ["0", "1", "3"]
    assert parse_nvidia_smi("No devices were found") == []


def test_discovery_honours_cuda_visible_devices():
    assert discover_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert discover_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_gpu_leasing_with_a_fake_device_list():
    pool = SlotPool.for_devices(["4", "6", "7"], cpu_slots=8)
    assert pool.kind == "gpu" and pool.size == 3
    first, second = pool.lease(), pool.lease()
    assert (first.label, second.label) == ("gpu:4", "gpu:6")
    assert first.env()["CUDA_VISIBLE_DEVICES"] == "4"
    assert first.env()["ABLATE_DEVICE"] == "cuda"
    pool.release(first)
    assert pool.lease().label == "gpu:4"  # lowest free slot first
    assert pool.lease().label == "gpu:7"
    assert pool.free() == 0
    with pytest.raises(RuntimeError, match="all 3 slots are leased"):
        pool.lease()
    pool.release(second)
    with pytest.raises(ValueError, match="not leased"):
        pool.release(second)
    assert [s.label for s in pool.leased()] == ["gpu:4", "gpu:7"]


def test_cpu_slots_hide_gpus_and_pin_threads():
    pool = SlotPool.for_devices([], cpu_slots=2)
    slot = pool.lease()
    env = slot.env(threads=3)
    assert slot.label == "cpu:0"
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["ABLATE_DEVICE"] == "cpu"
    assert env["OMP_NUM_THREADS"] == "3"
    with pytest.raises(ValueError):
        SlotPool.for_devices([], cpu_slots=0)
    with pytest.raises(ValueError, match="duplicate"):
        SlotPool([Slot("gpu", "0"), Slot("gpu", "0")])


def test_local_executor_gives_each_worker_its_leased_gpu(tmp_path):
    executor = LocalExecutor(SlotPool.for_devices(["3", "5"], 1), runs_root=tmp_path)
    request = AttemptRequest("r" * 12, "s", 1, tmp_path / "s" / "r", env={"EXTRA": "1"})
    envs = [executor.worker_env(slot, request) for slot in executor.pool._slots]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["3", "5"]
    assert envs[0]["EXTRA"] == "1"
    assert str(REPO) in envs[0]["PYTHONPATH"].split(":")


def test_shipped_profiles_validate_and_match_the_builtins():
    for path in sorted((REPO / "runners").glob("*.yaml")):
        profile = load_runner_profile(path)
        assert profile.name == path.stem
    for name, data in BUILTIN_PROFILES.items():
        shipped = load_runner_profile(name, search_dir=REPO / "runners")
        builtin = parse_runner_profile(data, name=name, source="<builtin>")
        assert shipped.model_dump(exclude={"description"}) == builtin.model_dump(
            exclude={"description"}
        ), name


def test_builtin_profiles_work_outside_the_repo(tmp_path):
    assert load_runner_profile("cpu", search_dir=tmp_path).cpu_slots == 2
    assert load_runner_profile(None, search_dir=tmp_path).executor == "local"


@pytest.mark.parametrize(
    "text, message",
    [
        ("executor: local\ncpu_slot: 2\n", "unknown key 'cpu_slot' (did you mean 'cpu_slots'?)"),
        ("executor: slurmm\n", "executor: Input should be 'inline', 'local' or 'slurm'"),
        ("executor: local\ncpu_slots: 0\n", "cpu_slots: must be >= 1"),
        ("executor: local\ngrace_s: -1\n", "grace_s:"),
        ("- executor\n", "a runner profile must be a mapping"),
        ("executor: [local\n", "invalid YAML"),
    ],
)
def test_bad_profiles_name_file_key_and_value(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_runner_profile(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_profile_lists_the_choices(tmp_path):
    (tmp_path / "gpu4.yaml").write_text("executor: local\n")
    with pytest.raises(SpecError, match="runner profile not found.*allowed: cpu, gpu4, inline"):
        load_runner_profile("gpu5", search_dir=tmp_path)


def test_make_executor_from_profiles(tmp_path):
    store = ResultsStore(tmp_path)
    inline = make_executor(
        parse_runner_profile({"executor": "inline"}, name="i", source="x"), store
    )
    assert isinstance(inline, InlineExecutor) and inline.capacity == 1
    cpu = parse_runner_profile(
        {"executor": "local", "gpus": "none", "cpu_slots": 3, "threads_per_job": 2},
        name="c",
        source="x",
    )
    local = make_executor(cpu, store)
    assert isinstance(local, LocalExecutor)
    assert local.capacity == 3 and local.pool.kind == "cpu" and local.threads_per_job == 2
    assert make_executor(cpu, store, max_parallel=2).capacity == 2
    gpus = parse_runner_profile({"executor": "local", "gpus": [1, 2, 5]}, name="g", source="x")
    assert gpus.gpu_ids() == ["1", "2", "5"]
    executor = make_executor(gpus, store, max_parallel=2)
    assert [s.label for s in executor.pool._slots] == ["gpu:1", "gpu:2"]
