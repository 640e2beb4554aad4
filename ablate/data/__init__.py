"""ScienceQA data: spec, loaders (official layout, HF parquet), prompts and synthetic data."""
