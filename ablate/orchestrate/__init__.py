"""Orchestration: plan a sweep against the store, dispatch attempts, retry, stop cleanly."""
