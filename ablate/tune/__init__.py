"""``ablate tune``: Optuna studies over the run space of sweeps (same specs, store, executors)."""
