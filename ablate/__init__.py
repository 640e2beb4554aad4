"""ablate: ablation sweeps and experiment management for parameter-efficient VL tuning."""

__version__ = "0.1.0"
