"""The ``slurm`` executor: attempts as SLURM jobs, submitted through submitit.

- :mod:`~ablate.execution.slurm.executor`: the executor (resources from the runner profile, job
  arrays for detached submissions, one job per attempt for a caller that waits);
- :mod:`~ablate.execution.slurm.jobs`: the handle of a submitted job and SLURM's state of it;
- :mod:`~ablate.execution.slurm.task`: what runs inside a task (the worker's supervisor);
- :mod:`~ablate.execution.slurm.watch`: following a detached sweep from the store alone (job
  states, lost attempts, tracking catch-up, ``--wait``).

Nothing is imported here, so ``import ablate.execution.slurm.watch`` never imports submitit.
"""
