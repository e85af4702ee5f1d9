"""Benchmark evaluation: dataset readers, tracking runs, the standard metrics, reports and plots.

`scripts/eval.py` drives it: `run` tracks every sequence of a dataset into a
results folder, `score` computes the published metrics for one or more such
folders, `compare` lines up variants sequence by sequence.
"""
