"""Runner profiles are one model per executor: each executor's keys live on its own profile."""

from __future__ import annotations

import pytest

from ablate.errors import SpecError
from ablate.execution.runner_profile import (
    InlineProfile,
    LocalProfile,
    SlurmProfile,
    SlurmResources,
    load_runner_profile,
    parse_runner_profile,
)


def _load(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path, load_runner_profile(path)


def test_the_executor_picks_the_profile_model(tmp_path):
    assert isinstance(_load(tmp_path, "executor: inline\n")[1], InlineProfile)
    assert isinstance(_load(tmp_path, "executor: local\ncpu_slots: 2\n")[1], LocalProfile)
    assert isinstance(_load(tmp_path, "executor: slurm\npartition: gpu\n")[1], SlurmProfile)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        (
            "executor: local\npartition: gpu\n",
            2,
            "partition: unknown key 'partition' (only for executor: slurm)",
        ),
        (
            "executor: slurm\ncpu_slots: 2\n",
            2,
            "cpu_slots: unknown key 'cpu_slots' (only for executor: local)",
        ),
        ("executor: inline\narray_chunk: 5\n", 2, "(only for executor: slurm)"),
        (
            "description: x\n",
            None,
            "executor: missing key 'executor'; allowed: inline, local, slurm",
        ),
        (
            "description: x\nexecutor: slurmm\n",
            2,
            "executor: Input should be 'inline', 'local' or 'slurm' (got 'slurmm')",
        ),
        ("executor: slurm\ngpus: -1\n", 2, "gpus: must be >= 0"),
    ],
)
def test_a_key_of_another_executor_is_refused_naming_it(tmp_path, text, line, fragment):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_runner_profile(path)
    assert info.value.line == line and fragment in str(info.value), str(info.value)
    assert str(info.value).startswith(f"{path}{f':{line}' if line else ''}: ")


def test_slurm_options_are_declared_once_and_become_the_task_resources():
    assert set(SlurmResources.model_fields) <= set(SlurmProfile.model_fields)
    assert not set(SlurmResources.model_fields) - {"gpus"} & set(LocalProfile.model_fields)
    profile = parse_runner_profile(
        {
            "executor": "slurm",
            "gpus": "none",
            "cpus": 2,
            "array_parallelism": 8,
            "array_chunk": 10,
            "max_requeues": 1,
        },
        name="s",
        source="s.yaml",
    )
    resources = profile.resources()
    assert (resources.gpus, resources.cpus, resources.array_parallelism) == (0, 2, 8)
    assert (resources.array_chunk, resources.max_requeues) == (10, 1)
    assert profile.resources(max_parallel=3).array_parallelism == 3
    assert parse_runner_profile({"executor": "slurm"}, name="s", source="s").resources().gpus == 1
