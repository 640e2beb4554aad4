"""Executors: where an attempt runs (in-process, local subprocess per slot; SLURM later)."""
