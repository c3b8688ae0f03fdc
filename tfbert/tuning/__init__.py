"""Hyper-parameter search over tfbert's training loop (python -m tfbert.tune): the space, the search, its report."""
