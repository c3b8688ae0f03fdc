"""An export's TensorFlow Lite model (`--tflite`): raw strings in, the head's answers out, int8 weights.

For the pooled-head tasks: classification (probabilities, label_id), multi-label (probabilities, chosen: 1 where a
label's probability reaches its tuned threshold, num_labels) and regression on single texts (score, in the label's
units). The version folder gets assets.extra/model.tflite beside the SavedModel (TF Serving ignores assets.extra/;
the SavedModel stays the main export). Inside the one .tflite: tensorflow_text's FastBertTokenizer over the export's
own vocabulary and casing (its ops have TFLite kernels, which the preprocess model's do not), the window cut as
training cut it (--long-texts truncate: the first max_seq_length - 2 wordpieces), [CLS]/[SEP], padding to the
batch's longest, the float32 forward-only inference graph with its matmul weights quantized to int8 (TFLite's
dynamic-range quantization: activations stay float, quantized per call) and the head's answers (a classifier's
softmax(logits / T) and argmax or tuned threshold; a multi-label model's sigmoid and thresholds; a regressor's
standardised score mapped back to the label's units). It loads in a process with only tensorflow and
tensorflow_text:

    import numpy as np, tensorflow_text as tf_text
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps
    run = InterpreterWithCustomOps(model_path="model.tflite",
                                   custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS
                                   ).get_signature_runner()
    run(text=np.array(["what a lovely day"], dtype=object))  # {"probabilities": ..., "label_id": ...}

The tokenizer is not the SavedModel's: FastBertTokenizer keeps U+FFFD (the replacement character) and a few
private-use and unassigned code points as [UNK] where Hugging Face's tokenization, which the SavedModel
reproduces, drops them. Before writing, the .tflite answers the export's check texts in a fresh process and is
compared with the SavedModel; the metadata's "tflite" records how closely they agree. It is not written when the
conversion fails, or when its decisions (labels; a multi-label model's per-label choices) agree with the
SavedModel's on fewer than MIN_LABEL_AGREEMENT of them, or a regressor's scores differ by more than
MAX_MEAN_SCORE_DIFF label standard deviations on average (the SavedModel is published either way). A call needs at
least one text: TFLite's XNNPACK delegate fails on an empty batch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from tfbert.export.publish import run_in_fresh_process

TFLITE_FILE = "model.tflite"  # in the version's assets.extra/
# Share of the check texts' decisions (labels; a multi-label model's per-label choices) the .tflite must make as
# the SavedModel does (else it is not written). Measured on the built-in tweets' test split: 0.992 (31 of 3,720
# labels moved: int8 weights and the tokenizer).
MIN_LABEL_AGREEMENT = 0.9
# A regressor's bound: the mean |score difference| from the SavedModel's, in standard deviations of the labels.
MAX_MEAN_SCORE_DIFF = 0.1
WEIGHTS = "int8 (dynamic range)"
TOKENIZER = "tensorflow_text FastBertTokenizer"


class LiteModel(tf.Module):
    """text [batch] -> the head's answers, in ops TFLite (with tensorflow_text's kernels) runs. `forward`: a float32
    inference graph, encoder inputs -> logits; `answers`: logits -> outputs, with `compared` (the output compared
    with the SavedModel's) and `decisions` (numpy: its decisions, or None for a score). Each exporter has its own:
    classifier.ClassifierAnswers, multilabel.MultilabelAnswers, regressor.RegressorAnswers."""

    def __init__(self, forward, vocab: list[str], lower_case: bool, max_seq_length: int, answers):
        super().__init__()
        import tensorflow_text as tf_text
        self.forward, self.answers = forward, answers
        self.tokenizer = tf_text.FastBertTokenizer(vocab=vocab, token_out_type=tf.int64,
                                                   lower_case_nfd_strip_accents=lower_case)
        self.cls_id, self.sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
        self.window = max_seq_length - 2

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        ids = self.tokenizer.tokenize(text)
        if ids.ragged_rank > 1:
            ids = ids.merge_dims(-2, -1)
        # Dense ops from here: TFLite has no kernel for the ragged ops that trimming and combine_segments use.
        lengths = tf.minimum(ids.row_lengths(), self.window)
        n = tf.shape(lengths, out_type=tf.int64)[0]
        width = tf.reduce_max(tf.concat([lengths, [0]], 0))
        body = ids.to_tensor(default_value=0, shape=tf.stack([n, width]))  # cut to the window, padded
        word = tf.concat([tf.fill([n, 1], tf.constant(self.cls_id, tf.int64)), body, tf.zeros([n, 1], tf.int64)], 1)
        position = tf.range(width + 2, dtype=tf.int64)[None, :]
        end = lengths[:, None] + 1
        word = tf.cast(tf.where(position == end, tf.constant(self.sep_id, tf.int64), word), tf.int32)
        mask = tf.cast(position <= end, tf.int32)
        return self.answers(self.forward({"input_word_ids": word, "input_mask": mask,
                                          "input_type_ids": tf.zeros_like(word)}))


class ExportedForward(tf.Module):
    """A published export's inference graph (the `core` of tf.saved_model.load(version): `core.forward` takes the
    encoder inputs) as the callable LiteModel takes: a .tflite of an export trained without --tflite."""

    def __init__(self, core):
        super().__init__()
        self.core = core

    def __call__(self, inputs):
        return self.core.forward(inputs)


def vocabulary(preprocess) -> tuple[list[str], bool]:
    """The vocabulary and casing of a loaded preprocess model that carries them (tfbert's converted ones do)."""
    if not (hasattr(preprocess, "vocab_file") and hasattr(preprocess, "do_lower_case")):
        raise ValueError("the preprocess model has no vocab_file and do_lower_case to build a TFLite tokenizer from")
    path = preprocess.vocab_file.asset_path.numpy().decode("utf-8")
    vocab = Path(path).read_text(encoding="utf-8").split("\n")
    return (vocab[:-1] if vocab[-1] == "" else vocab), bool(preprocess.do_lower_case.numpy())


def convert(module: LiteModel) -> bytes:
    """The TFLite flatbuffer of module.serve: builtin ops, tensorflow_text's as custom ops, int8 weights."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.allow_custom_ops = True  # FastBertNormalize, FastWordpieceTokenize, RaggedTensorToTensor
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


# Runs in a fresh interpreter with only tensorflow and tensorflow_text, as a user's would: the check texts, the first
# alone, one and two empty texts; prints each call's outputs.
_CHECK_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow_text as tf_text
from tensorflow.lite.python.interpreter import InterpreterWithCustomOps
assert not [m for m in sys.modules if m.split('.')[0] in ('tfbert', 'tensorflow_hub', 'tf_keras')]
args = json.loads(sys.stdin.readline())
run = InterpreterWithCustomOps(model_path=args["path"], num_threads=2,
                               custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS).get_signature_runner()
out = {}
for name, texts in (("check", args["texts"]), ("first", args["texts"][:1]), ("empty", [""]), ("empties", ["", ""])):
    res = run(text=np.array(texts, dtype=object))
    out[name] = {k: np.asarray(v).tolist() for k, v in res.items()}
print("RESULT" + json.dumps(out))
"""


def write_tflite(directory: Path, forward, preprocess, *, max_seq_length: int, expected: np.ndarray,
                 texts: list[str], answers, log=print) -> dict:
    """Writes directory/assets.extra/model.tflite (`forward` a float32 inference graph, `answers` its head's, as
    LiteModel takes) if its answers on `texts` agree with the SavedModel's `expected` ones (its `answers.compared`
    output); returns the facts for the metadata."""
    log("tflite: converting the model with its tokenizer (int8 weights)")
    try:
        vocab, lower_case = vocabulary(preprocess)
        blob = convert(LiteModel(forward, vocab, lower_case, max_seq_length, answers))
    except Exception as e:  # an optional copy: its failure must not cost the SavedModel the run trained
        why = f"the conversion failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        log(f"WARNING: tflite: not written: {why}")
        return {"written": False, "reason": why}
    path = Path(directory) / "assets.extra" / TFLITE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    got = run_in_fresh_process(_CHECK_SCRIPT, {"path": str(path), "texts": texts}, str(path))
    values = np.asarray(got["check"][answers.compared], np.float32)
    edges_ok = all(np.asarray(got[k][answers.compared]).shape == (n, *expected.shape[1:])
                   for k, n in (("first", 1), ("empty", 1), ("empties", 2)))
    if values.shape != expected.shape or not edges_ok:
        raise RuntimeError(f"{path}: answers of shape {values.shape}, expected {expected.shape}")
    diff = np.abs(values - expected)
    facts = {"file": f"assets.extra/{TFLITE_FILE}", "weights": WEIGHTS, "tokenizer": TOKENIZER,
             "megabytes": round(path.stat().st_size / 2 ** 20, 2), "check_texts": len(texts),
             "max_diff": float(diff.max()), "mean_diff": float(diff.mean())}
    if answers.decisions is not None:
        facts["label_agreement"] = float((answers.decisions(values) == answers.decisions(expected)).mean())
        short = facts["label_agreement"] < MIN_LABEL_AGREEMENT
        why = f"its decisions agree with the SavedModel's on {facts['label_agreement']:.1%} of them over " \
              f"{len(texts)} texts, below {MIN_LABEL_AGREEMENT:.0%}"
        summary = f"decisions as the SavedModel's on {facts['label_agreement']:.1%}"
    else:
        facts["mean_diff_in_std"] = facts["mean_diff"] / max(answers.std, 1e-12)
        short = facts["mean_diff_in_std"] > MAX_MEAN_SCORE_DIFF
        why = f"its scores differ from the SavedModel's by {facts['mean_diff_in_std']:.2f} label standard " \
              f"deviations on average over {len(texts)} texts, above {MAX_MEAN_SCORE_DIFF}"
        summary = f"scores {facts['mean_diff_in_std']:.3f} label standard deviations from the SavedModel's on average"
    if short:
        path.unlink()
        log(f"WARNING: tflite: not written: {why}")
        kept = ("check_texts", "label_agreement", "mean_diff_in_std")
        return {"written": False, "reason": why, **{k: facts[k] for k in kept if k in facts}}
    log(f"tflite: {facts['file']} ({facts['megabytes']:.1f} MB), {summary} over {len(texts)} texts, largest "
        f"difference {facts['max_diff']:.3f}")
    return {"written": True, **facts}


def export_tflite(directory: Path, server, core, encoder_handle, pooling: str, max_seq_length: int, answers,
                  texts: list[str], log=print) -> dict:
    """An exporter's .tflite (classifier, multi-label, regressor): from the float32 inference graph it serves, or
    one built for it (bf16 exports; `core` the trained model, reading `pooling`); compared with `server.serve` on
    `texts`. Returns the facts for the metadata."""
    from tfbert.encoders.inference_graph import InferenceGraph, inference_graph
    forward = server.core
    if not (isinstance(forward, InferenceGraph) and forward.compute_dtype == tf.float32):
        forward, why = inference_graph(core, encoder_handle, [(pooling, "logits")], dtype=tf.float32)
        if forward is None:
            log(f"WARNING: tflite: not written: no inference graph ({why})")
            return {"written": False, "reason": f"no inference graph: {why}"}
    expected = np.concatenate([server.serve(tf.constant(texts[i:i + 64]))[answers.compared].numpy()
                               for i in range(0, len(texts), 64)])
    return write_tflite(directory, forward, server.preprocess, max_seq_length=max_seq_length, expected=expected,
                        texts=texts, answers=answers, log=log)


def refuse_tflite_cut(tflite: dict | None, inputs, has_pairs: bool = False) -> None:
    """The TFLite model reads single texts cut by truncation: an exporter asked for one otherwise raises."""
    if tflite is not None and (has_pairs or inputs.long_texts != "truncate"):
        raise ValueError("the TFLite model reads single texts cut by truncation, not sentence pairs or --long-texts "
                         f"{inputs.long_texts}")
