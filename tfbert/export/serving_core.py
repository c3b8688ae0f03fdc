"""Which numeric core an export serves: the forward-only inference graph, or the trained Keras core.

Every exporter whose core is a tfbert encoder with logits heads (classifier, multi-label, regression, tagger,
multitask) asks here. The inference graph (tfbert.encoders.inference_graph) is built from the trained weights, and
served only if its answers match the trained core's on the check texts: each head's logits turned into what the
head serves (softmax or sigmoid probabilities; a regression head's standardised score), compared at every real
position of a head that reads tokens. Otherwise the trained core is served and the reason logged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfbert.data.pipeline import TextPipeline

# Largest difference allowed between the inference graph's answers and the trained core's (else: trained core).
# bf16: both graphs round differently from float32 (measured on a fine-tuned MiniLM over 1,536 test tweets: the
# trained graph 0.006 from a float32 evaluation of the same weights, the inference graph 0.007, and 0.008 from each
# other; 0.021 on another run); a wrong weight layout moves probabilities by tenths.
INFERENCE_GRAPH_TOLERANCE = {tf.float32: 1e-3, tf.bfloat16: 0.05}
CHECK_BATCH = 32  # texts per call when comparing the two graphs
SERVING_CHECK_TEXTS = 256  # test texts a task adds to the export's own check texts for the comparison
# Serving kind (the metadata's "serving") -> how a head's logits become its answers: what the two graphs are
# compared on.
ANSWERS = {"classifier": lambda x: tf.nn.softmax(x, axis=-1), "multilabel": tf.sigmoid, "regressor": tf.identity,
           "tagger": lambda x: tf.nn.softmax(x, axis=-1)}
LABELLED = ("classifier", "tagger")  # kinds whose answer is an argmax label (the label agreement)


@dataclass(frozen=True)
class ServedHead:
    """One output of the trained core: its logits layer's name, what it reads (pooled, cls, mean or tokens:
    tfbert.encoders.inference_graph.READS) and its serving kind (ANSWERS)."""
    layer: str
    reads: str
    kind: str


def choose_serving_core(core, encoder_handle: str | None, pipeline: TextPipeline, texts: list[str],
                        heads: list[ServedHead], log=print):
    """The inference graph of `core` (outputs: the heads' logits, in order) if it answers as the core does on
    `texts`, else the core. Returns (core to serve, facts for the run's metrics and the export's metadata)."""
    from tfbert.encoders.inference_graph import inference_graph
    graph, why = inference_graph(core, encoder_handle, [(h.reads, h.layer) for h in heads])
    if graph is None:
        log(f"serving graph: the trained Keras graph ({why})")
        return core, {"graph": "trained", "reason": why}
    diff, agree = 0.0, []
    for start in range(0, len(texts), CHECK_BATCH):  # batches: 512-token inputs of a big encoder add up
        batch = tf.constant(texts[start:start + CHECK_BATCH])
        inputs = pipeline.encode(*([batch] if pipeline.n_segments == 1 else [batch, batch[::-1]]))
        real = inputs["input_mask"].numpy() == 1
        trained = tf.nest.flatten(core(inputs, training=False))
        for head, a, b in zip(heads, trained, tf.nest.flatten(graph(inputs))):
            a, b = (ANSWERS[head.kind](tf.cast(x, tf.float32)).numpy() for x in (a, b))
            if head.reads == "tokens":
                a, b = a[real], b[real]
            diff = max(diff, float(np.abs(a - b).max()))
            if head.kind in LABELLED:
                agree.append(a.argmax(-1) == b.argmax(-1))
    bound = INFERENCE_GRAPH_TOLERANCE[graph.compute_dtype]
    facts = {"max_diff": diff, "check_texts": len(texts), "dtype": graph.compute_dtype.name}
    if agree:
        facts["label_agreement"] = float(np.concatenate(agree).mean())
    if diff <= bound:
        log(f"serving graph: forward-only inference graph ({graph.compute_dtype.name}), largest difference from the "
            f"trained model's answers {diff:.1e} over {len(texts)} texts")
        return graph, {"graph": "inference", **facts}
    why = f"its answers differ from the trained model's by {diff:.2g}, above {bound}"
    log(f"WARNING: serving graph: keeping the trained Keras graph: {why}")
    return core, {"graph": "trained", "reason": why, **facts}
