"""Typed, frozen specs: what a run is, how a sweep expands, and how a run is named."""
