"""Evaluation: test predictions of every model, baseline and no-cue floor, metrics, probes, and what deployment changes
(parity)."""
