"""FLOP counting and MFU: matmul FLOPs of a BERT encoder + classifier head at the padded lengths actually run.

MFU = those FLOPs per second / the matmul peak of the same dtype, measured in the same run (phases.phase_peak).
Training counts 3 x the forward pass; serving counts the signature's length-sorted chunks, and the inference
graph's [CLS]-only last layer when the export serves it.
"""
from __future__ import annotations


def flops_per_example(seq_len: int, cfg: dict, n_classes: int, cls_only_last_layer: bool = False) -> float:
    """Forward matmul FLOPs of one example padded to seq_len: dense layers + attention scores/mixing + head.

    cls_only_last_layer: what tfbert's inference graph runs (tfbert.encoders.inference_graph): in the last layer
    only keys and values for every token, the rest for [CLS] alone."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_layers"]
    per_token = 4 * h * h + 2 * h * inter  # Q, K, V, attention output; FFN in and out
    attention = layers * 2 * 2 * seq_len * seq_len * h  # QK^T and AV
    dense = layers * per_token * seq_len
    if cls_only_last_layer:
        dense -= (per_token - 2 * h * h) * (seq_len - 1)
        attention -= 2 * 2 * (seq_len - 1) * seq_len * h
    head = 2 * (h * h + h * n_classes)  # pooler (one token) and classifier
    return 2 * dense + attention + head


def train_flops(shapes, cfg: dict, n_classes: int) -> float:
    """Matmul FLOPs of training steps over batches given as (examples, padded length, real tokens)."""
    return sum(3 * s[0] * flops_per_example(s[1], cfg, n_classes) for s in shapes)


def serving_flops(chunks, cfg: dict, n_classes: int, cls_only_last_layer: bool) -> float:
    """Forward FLOPs of the serving signature over its padded chunks, given as [padded length, texts] pairs."""
    return sum(flops_per_example(length, cfg, n_classes, cls_only_last_layer) * count for length, count in chunks)


def mfu(flops_per_sec: float, peak_gflops: float) -> float:
    return flops_per_sec / (peak_gflops * 1e9)
