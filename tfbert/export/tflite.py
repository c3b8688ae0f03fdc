"""A classifier export's TensorFlow Lite model (`--tflite`): raw strings in, probabilities out, int8 weights.

The version folder gets assets.extra/model.tflite beside the SavedModel (TF Serving ignores assets.extra/; the
SavedModel stays the main export). Inside the one .tflite: tensorflow_text's FastBertTokenizer over the export's
own vocabulary and casing (its ops have TFLite kernels, which the preprocess model's do not), the window cut as
training cut it (--long-texts truncate: the first max_seq_length - 2 wordpieces), [CLS]/[SEP], padding to the
batch's longest, the float32 forward-only inference graph with its matmul weights quantized to int8 (TFLite's
dynamic-range quantization: activations stay float, quantized per call), softmax(logits / T) and the label id (the
argmax, or the tuned threshold). It loads in a process with only tensorflow and tensorflow_text:

    import numpy as np, tensorflow_text as tf_text
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps
    run = InterpreterWithCustomOps(model_path="model.tflite",
                                   custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS
                                   ).get_signature_runner()
    run(text=np.array(["what a lovely day"], dtype=object))  # {"probabilities": ..., "label_id": ...}

The tokenizer is not the SavedModel's: FastBertTokenizer keeps U+FFFD (the replacement character) and a few
private-use and unassigned code points as [UNK] where Hugging Face's tokenization, which the SavedModel
reproduces, drops them. Before writing, the .tflite answers the export's check texts in a fresh process and is
compared with the SavedModel; the metadata's "tflite" records how closely they agree, and below
MIN_LABEL_AGREEMENT, or when the conversion fails, the file is not written (the SavedModel is published either
way). A call needs at least one text: TFLite's XNNPACK delegate fails on an empty batch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from tfbert.export.publish import run_in_fresh_process

TFLITE_FILE = "model.tflite"  # in the version's assets.extra/
# Share of the check texts whose label the .tflite must give as the SavedModel does (else it is not written).
# Measured on the built-in tweets' test split: 0.992 (31 of 3,720 labels moved: int8 weights and the tokenizer).
MIN_LABEL_AGREEMENT = 0.9
WEIGHTS = "int8 (dynamic range)"
TOKENIZER = "tensorflow_text FastBertTokenizer"


class LiteClassifier(tf.Module):
    """text [batch] -> {probabilities [batch, labels], label_id [batch]}, in ops TFLite (with tensorflow_text's
    kernels) runs. `forward`: a float32 inference graph, encoder inputs -> logits."""

    def __init__(self, forward, vocab: list[str], lower_case: bool, max_seq_length: int, temperature: float = 1.0,
                 threshold: float | None = None):
        super().__init__()
        import tensorflow_text as tf_text
        self.forward = forward
        self.tokenizer = tf_text.FastBertTokenizer(vocab=vocab, token_out_type=tf.int64,
                                                   lower_case_nfd_strip_accents=lower_case)
        self.cls_id, self.sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
        self.window, self.temperature, self.threshold = max_seq_length - 2, float(temperature), threshold

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
        logits = self.forward({"input_word_ids": word, "input_mask": mask, "input_type_ids": tf.zeros_like(word)})
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32) / self.temperature, axis=-1)
        if self.threshold is None:
            label_id = tf.argmax(probabilities, axis=-1)
        else:
            label_id = tf.cast(probabilities[:, 1] >= self.threshold, tf.int64)
        return {"probabilities": probabilities, "label_id": label_id}


class ExportedForward(tf.Module):
    """A published export's inference graph (the `core` of tf.saved_model.load(version): `core.forward` takes the
    encoder inputs) as the callable LiteClassifier takes: a .tflite of an export trained without --tflite."""

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


def convert(module: LiteClassifier) -> bytes:
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
                 texts: list[str], temperature: float = 1.0, threshold: float | None = None, log=print) -> dict:
    """Writes directory/assets.extra/model.tflite (the classifier, `forward` a float32 inference graph) if its
    answers on `texts` agree with the SavedModel's `expected` probabilities; returns the facts for the metadata."""
    log("tflite: converting the classifier with its tokenizer (int8 weights)")
    try:
        vocab, lower_case = vocabulary(preprocess)
        blob = convert(LiteClassifier(forward, vocab, lower_case, max_seq_length, temperature, threshold))
    except Exception as e:  # an optional copy: its failure must not cost the SavedModel the run trained
        why = f"the conversion failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        log(f"WARNING: tflite: not written: {why}")
        return {"written": False, "reason": why}
    path = Path(directory) / "assets.extra" / TFLITE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    got = run_in_fresh_process(_CHECK_SCRIPT, {"path": str(path), "texts": texts}, str(path))
    probabilities = np.asarray(got["check"]["probabilities"], np.float32)
    edges_ok = all(np.asarray(got[k]["probabilities"]).shape == (n, expected.shape[1])
                   for k, n in (("first", 1), ("empty", 1), ("empties", 2)))
    if probabilities.shape != expected.shape or not edges_ok:
        raise RuntimeError(f"{path}: answers of shape {probabilities.shape}, expected {expected.shape}")
    agreement = float((probabilities.argmax(-1) == expected.argmax(-1)).mean())
    facts = {"file": f"assets.extra/{TFLITE_FILE}", "weights": WEIGHTS, "tokenizer": TOKENIZER,
             "megabytes": round(path.stat().st_size / 2 ** 20, 2), "check_texts": len(texts),
             "label_agreement": agreement, "max_diff": float(np.abs(probabilities - expected).max()),
             "mean_diff": float(np.abs(probabilities - expected).mean())}
    if agreement < MIN_LABEL_AGREEMENT:
        path.unlink()
        why = f"its labels agree with the SavedModel's on {agreement:.1%} of {len(texts)} texts, below " \
              f"{MIN_LABEL_AGREEMENT:.0%}"
        log(f"WARNING: tflite: not written: {why}")
        return {"written": False, "reason": why, **{k: facts[k] for k in ("check_texts", "label_agreement")}}
    log(f"tflite: {facts['file']} ({facts['megabytes']:.1f} MB), labels as the SavedModel's on {agreement:.1%} of "
        f"{len(texts)} texts, largest probability difference {facts['max_diff']:.3f}")
    return {"written": True, **facts}
