"""What an ``mmt`` run needs from the machine, checked by :mod:`ablate.orchestrate.preflight`.

An ``mmt`` run on real backbones needs four things the spec cannot validate by itself:

- the ScienceQA folder ``data.root`` with the files its layout needs (official: ``problems.json``,
  ``pid_splits.json`` with the run's splits, ``images/`` unless ``data.image_placeholder``; or one
  parquet file per split of the Hugging Face export), as :mod:`ablate.data.scienceqa` reads them;
- the LLM weights: a local transformers directory, or a hub id already in the local hub cache (or,
  uncached, a hub that answers within the probe's bound: never the loader's minute of time-outs);
- the vision checkpoint file, or the hub repository of an open_clip pretrained tag, likewise;
- a GPU with room for the run's memory estimate (:mod:`ablate.model.sizing`), when the runner
  leases GPUs here; on a machine without one, that it has none.

Tiny twins and synthetic data are built locally on first use: they need nothing. Each check reads
files and folders only (``problems.json`` is never parsed: it is 40 MB), so Table 3 is checked in
milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ablate.jobs.needs import Need

if TYPE_CHECKING:
    from ablate.jobs.needs import Machine
    from ablate.spec.run_spec import RunSpec

LAYOUTS = (
    "a ScienceQA folder: the official layout (problems.json, pid_splits.json, images/) or the "
    "Hugging Face parquet export (one parquet file per split)"
)


def mmt_needs(spec: RunSpec) -> list[Need]:
    """The needs of one ``mmt`` run: its data folder, its weights, a GPU for real backbones."""
    from ablate.model.presets import llm_preset, vision_preset

    cfg = spec.config
    data, model = cfg.data, cfg.model  # type: ignore[attr-defined]
    needs: list[Need] = []
    if data.dataset == "scienceqa":
        splits = tuple(dict.fromkeys((data.train_split, data.val_split, data.test_split)))
        detail = (data.source_format, splits, data.image_placeholder)
        needs.append(Need("data.root", data.root, check_scienceqa, (data.root, detail), detail))
    llm = llm_preset(model.llm)
    if not llm.twin:
        key = "model.llm_path" if model.llm_path else "model.llm"
        where = model.llm_path or llm.default_path
        needs.append(Need(key, where, check_llm_weights, where, model.llm))
    vision = vision_preset(model.vision)
    if not vision.twin:
        key = "model.vision_path" if model.vision_path else "model.vision"
        where = model.vision_path or model.vision
        ident = (model.vision, model.vision_path)
        needs.append(Need(key, where, check_vision_weights, ident, model))
    if not (llm.twin and vision.twin):
        needs.append(Need("model", None, check_gpu_present, None))
        shape = (model.llm, model.vision, model.quantization, model.precision)
        shape += (cfg.train.micro_batch, cfg.train.batch_size, data.max_seq_len)  # type: ignore[attr-defined]
        needs.append(Need("model", f"{model.llm} + {model.vision}", check_gpu_memory, shape, spec))
    return needs


def check_scienceqa(need: Need, machine: Machine) -> str | None:
    """The data folder and the files its layout needs for the run's splits."""
    from ablate.data.scienceqa import IMAGES_DIR, PROBLEMS_FILE, SPLITS_FILE
    from ablate.json_input import read_json_file

    fmt, splits, placeholder = need.subject
    if not need.value:
        return f"not set; point it at {LAYOUTS}"
    root = Path(need.value).expanduser()
    if not root.is_dir():
        return f"folder does not exist; needed: {LAYOUTS}"
    official = (root / PROBLEMS_FILE).is_file()
    if fmt == "official" or (fmt == "auto" and official):
        missing = [f for f in (PROBLEMS_FILE, SPLITS_FILE) if not (root / f).is_file()]
        if missing:
            return f"no {' or '.join(missing)} in the folder (the official layout needs both)"
        try:
            listed = read_json_file(root / SPLITS_FILE, "the ScienceQA splits {split: [pid, ...]}")
        except (OSError, ValueError) as err:
            return str(err)
        absent = [s for s in splits if not isinstance(listed, dict) or s not in listed]
        if absent:
            have = sorted(listed) if isinstance(listed, dict) else []
            return f"{SPLITS_FILE} has no split {', '.join(absent)} (it has {', '.join(have)})"
        if not placeholder and not (root / IMAGES_DIR).is_dir():
            return (
                f"no {IMAGES_DIR}/ folder (the official images); add them, or set "
                "data.image_placeholder: true for blank images"
            )
        return None
    from ablate.data.scienceqa_parquet import split_files

    problems = []
    for split in splits:
        try:
            split_files(root, split)
        except FileNotFoundError as err:
            problems.append(str(err).removeprefix(f"{root}: "))
    if problems:
        return "; ".join(problems) + f"; needed: {LAYOUTS}"
    return None


def _hub_problem(repo: str, machine: Machine, local_hint: str) -> str | None:
    """``None`` when ``repo`` is in the hub cache or the hub answers; else what to do."""
    if machine.hub_cached(repo):
        return None
    if machine.hub_offline:
        return (
            f"not in the local Hugging Face cache ({machine.hub_cache}) and HF_HUB_OFFLINE is "
            f"set; download it first (`huggingface-cli download {repo}`) or {local_hint}"
        )
    if machine.hub_reachable:
        return None
    return (
        f"not in the local Hugging Face cache ({machine.hub_cache}) and the hub is unreachable; "
        f"download it on a connected machine (`huggingface-cli download {repo}`) or {local_hint}"
    )


def check_llm_weights(need: Need, machine: Machine) -> str | None:
    """A local transformers directory, or a hub id that is cached (or reachable)."""
    where = str(need.value)
    hint = "set model.llm_path to a local transformers directory (e.g. /path/to/llama-2-7b-hf)"
    if where.startswith(("/", ".", "~")) or Path(where).exists():
        folder = Path(where).expanduser()
        if not folder.is_dir():
            return f"no such directory; {hint}"
        if not (folder / "config.json").is_file():
            return f"no config.json in the directory (not a transformers model); {hint}"
        return None
    return _hub_problem(where, machine, hint)


def check_vision_weights(need: Need, machine: Machine) -> str | None:
    """The checkpoint file, or the hub repository of the preset's open_clip pretrained tag."""
    from ablate.model.presets import vision_preset

    model = need.subject
    preset = vision_preset(model.vision)
    hint = f"set model.vision_path to the checkpoint file (e.g. /path/to/{preset.file_name})"
    path = model.vision_path
    if path is not None and (path.startswith(("/", ".", "~")) or "/" in path):
        return None if Path(path).expanduser().is_file() else f"no such file; {hint}"
    if path is None and preset.pretrained_tag is None:
        return f"the preset has no downloadable weights; {hint}"
    if path is not None and path != preset.pretrained_tag:
        return None  # another open_clip tag: open_clip knows where it lives
    assert preset.pretrained_hub is not None
    return _hub_problem(preset.pretrained_hub, machine, hint)


def check_gpu_present(need: Need, machine: Machine) -> str | None:
    """Real backbones need a GPU: one the runner leases here (skipped off GPU runners)."""
    if machine.gpu_ids is None or machine.gpu_ids:
        return None  # a CPU runner, GPUs this machine cannot see (SLURM nodes), or GPUs
    return (
        f"real backbones need a GPU, and runner {machine.runner!r} finds none on this machine "
        "(CUDA_VISIBLE_DEVICES, nvidia-smi -L); run on a GPU machine, or try the sweep on CPUs "
        "with --scale tiny"
    )


def check_gpu_memory(need: Need, machine: Machine) -> str | None:
    """Room on the runner's smallest GPU for the run's memory estimate (when there are GPUs)."""
    gpus = machine.gpu_ids or []
    memory = [machine.gpu_memory_gib[g] for g in gpus if g in machine.gpu_memory_gib]
    if not memory:
        return None  # no GPU (check_gpu_present says so), or nvidia-smi could not say
    from ablate.spec.job_kinds import get_job

    spec = need.subject
    describe = get_job(spec.job).describe  # mmt's plan columns: the estimate of `ablate plan`
    estimate = float(describe(spec)["gpu_memory_gib"]) if describe is not None else 0.0
    if estimate <= min(memory):
        return None
    return (
        f"needs about {estimate:.1f} GiB of GPU memory (the estimate of `ablate plan`), more "
        f"than the {min(memory):.1f} GiB of the smallest GPU runner {machine.runner!r} leases; "
        "use model.quantization: nf4, a smaller train.micro_batch, or a larger GPU"
    )
