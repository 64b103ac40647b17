"""Evaluation: the protocol, baselines, metrics, the report and its pictures."""
