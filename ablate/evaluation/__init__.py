"""Evaluation: answer parsing, the official ScienceQA accuracy columns and prediction files."""
