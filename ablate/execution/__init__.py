"""Executors: where an attempt runs (in this process, a local subprocess per slot, SLURM)."""
