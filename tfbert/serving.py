"""Load an exported tfbert SavedModel and run it on Python strings.

The export contract: ``<base>/<name>/<version>/`` (integer versions, TF Serving layout) with
signature ``serving_default`` (``text`` -> ``probabilities``, ``label``, ``label_id``), optionally
``serving_pairs`` (``text``, ``text_b`` -> same outputs), and label names in ``assets/labels.txt``.

TensorFlow is imported only when a model is loaded, so path and label checks
(:func:`resolve_model_dir`, :func:`read_labels`) answer in milliseconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["resolve_model_dir", "read_labels", "ExportedClassifier", "load"]

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
LABELS_FILE = Path("assets") / "labels.txt"


def _is_version(name: str) -> bool:
    return name.isascii() and name.isdigit()  # TF Serving loads only integer-named version folders


def _is_saved_model(d: Path) -> bool:
    return any((d / f).is_file() for f in SAVED_MODEL_FILES)


def resolve_model_dir(path) -> Path:
    """Return the SavedModel directory for ``path``.

    ``path`` may be a version directory (holds saved_model.pb) or a model base directory, for
    which the highest integer-named version that holds a saved_model.pb is chosen (non-integer
    entries such as ``runs/`` or hidden temp dirs are ignored, as TF Serving does; an integer
    folder still being written has no saved_model.pb yet and is skipped).
    Raises FileNotFoundError naming ``path`` when nothing loadable is there.
    """
    p = Path(path)
    if p.is_file() and p.name in SAVED_MODEL_FILES:
        return p.parent
    if not p.exists():
        raise FileNotFoundError(f"model directory {p} does not exist.")
    if not p.is_dir():
        raise FileNotFoundError(f"{p} is not a directory; pass a SavedModel directory or a model base directory.")
    if _is_saved_model(p):
        return p
    versions = sorted((d for d in p.iterdir() if d.is_dir() and _is_version(d.name)),
                      key=lambda d: int(d.name), reverse=True)
    for d in versions:
        if _is_saved_model(d):
            return d
    if versions:
        raise FileNotFoundError(
            f"{p}: none of its version folders ({', '.join(d.name for d in reversed(versions))}) "
            f"contains a saved_model.pb."
        )
    raise FileNotFoundError(
        f"{p}: no saved_model.pb and no integer version folders (like {p / '1'}) with one. "
        f"Pass a SavedModel directory or a model base directory <base>/<name>."
    )


def read_labels(model_dir) -> list[str]:
    """Label names from ``assets/labels.txt`` of a SavedModel directory (resolved first), in label_id order."""
    d = resolve_model_dir(model_dir)
    f = d / LABELS_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{d}: no {LABELS_FILE}; the exported model must list its label names there.")
    # Only line ends are stripped: a label may legitimately contain spaces.
    labels = f.read_text(encoding="utf-8").splitlines()
    while labels and labels[-1] == "":
        labels.pop()
    if not labels:
        raise ValueError(f"{f} is empty; it must hold one label name per line.")
    return labels


def _as_strings(values, what: str) -> list:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a single {type(values).__name__}.")
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):  # NaN: pandas' missing cell
            out.append("")
        elif isinstance(v, (str, bytes)):
            out.append(v)
        else:
            out.append(str(v))
    return out


class ExportedClassifier:
    """A loaded exported classifier.

    ``labels`` are the label names (``labels[label_id]``), ``has_pairs`` tells whether the model
    has the ``serving_pairs`` signature, ``path`` is the resolved version directory.
    """

    def __init__(self, path):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the tokenizer ops the exported graph uses

        self._tf = tf
        self.path = resolve_model_dir(path)
        self.labels = read_labels(self.path)
        self._model = tf.saved_model.load(str(self.path))
        signatures = self._model.signatures
        if "serving_default" not in signatures:
            raise ValueError(f"{self.path}: SavedModel has no 'serving_default' signature "
                             f"(signatures: {', '.join(signatures) or 'none'}).")
        self._single = signatures["serving_default"]
        self._pairs = signatures.get("serving_pairs")

    @property
    def has_pairs(self) -> bool:
        return self._pairs is not None

    def predict(self, texts, texts_b=None, batch_size: int = 256):
        """Classify ``texts`` (or (text, text_b) pairs); returns ``(probabilities, label_ids, labels)``.

        ``probabilities`` is float32 ``[n, n_classes]``, ``label_ids`` int64 ``[n]``, ``labels`` a list of
        label names. None (or NaN) texts are sent as "". Runs the signature in batches of ``batch_size``.
        """
        tf = self._tf
        texts = _as_strings(texts, "texts")
        if texts_b is not None:
            texts_b = _as_strings(texts_b, "texts_b")
            if not self.has_pairs:
                raise ValueError(f"{self.path}: model has no 'serving_pairs' signature (it was not trained on "
                                 f"sentence pairs), so texts_b cannot be used.")
            if len(texts_b) != len(texts):
                raise ValueError(f"texts has {len(texts)} items but texts_b has {len(texts_b)}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")

        probs, ids, names = [], [], []
        for start in range(0, len(texts), batch_size):
            a = tf.constant(texts[start:start + batch_size], dtype=tf.string)
            if texts_b is None:
                out = self._single(text=a)
            else:
                out = self._pairs(text=a, text_b=tf.constant(texts_b[start:start + batch_size], dtype=tf.string))
            probs.append(out["probabilities"].numpy().astype(np.float32, copy=False))
            ids.append(out["label_id"].numpy().astype(np.int64, copy=False))
            names += [s.decode("utf-8") for s in out["label"].numpy().tolist()]
        if not probs:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0,), np.int64), []
        probabilities = np.concatenate(probs)
        if probabilities.shape[1] != len(self.labels):
            raise ValueError(f"{self.path}: model outputs {probabilities.shape[1]} probabilities but "
                             f"{LABELS_FILE} lists {len(self.labels)} labels.")
        return probabilities, np.concatenate(ids), names


def load(path) -> ExportedClassifier:
    """Load the exported classifier at ``path`` (a version directory or a model base directory)."""
    return ExportedClassifier(path)
