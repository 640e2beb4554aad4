"""Training of multimodal adapters: spec, optimiser and schedule, batching, the step, checkpoints.

Only :mod:`ablate.train.spec` is torch-free; import the other modules inside workers.
"""
