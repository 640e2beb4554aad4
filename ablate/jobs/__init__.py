"""Job kinds: what a worker executes for one run (``mmt`` training, ``linear-fit`` debugging)."""
