"""MLflow tracking of sweeps: observation beside the results store, never in the way of training.

Orchestrator side: :class:`ablate.tracking.mlflow_tracker.MlflowTracker`; the one route of a run's
metrics into MLflow: :func:`ablate.tracking.run_sync.sync_run_folder` (workers never import
MLflow); commands: :mod:`ablate.tracking.commands`.
"""
