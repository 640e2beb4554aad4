"""MLflow tracking of sweeps: observation beside the results store, never in the way of training.

Orchestrator side: :class:`ablate.tracking.mlflow_tracker.MlflowTracker`; worker side:
:func:`ablate.tracking.worker_sink.sink_from_env`; commands: :mod:`ablate.tracking.commands`.
"""
