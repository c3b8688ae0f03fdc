"""Extractive question answering (SQuAD): a start/end head on sequence_output, windows over long contexts.

    python -m tfbert.train --task qa                      # built-in questions over the Twitter NER corpus
    python -m tfbert.train --task qa --train-file train-v2.0.json --test-file dev-v2.0.json

Each question is packed with each window of its context ([CLS] question [SEP] window [SEP]; tfbert.data.windows);
every window is a training example whose labels are the answer's first and last wordpiece positions when the
window holds the whole answer, else [CLS] (position 0: "not here", which is also the label of no-answer questions).
Loss: the mean of the start and end cross-entropies. Validation and test questions are answered by the export's own
decoding (tfbert.export.qa.QaReader) and scored with SQuAD's EM/F1 (tfbert.metrics.qa); early stopping follows
validation F1. Models trained on data with no-answer questions also learn when to abstain: the threshold on
(best span score - null score) is tuned on validation after training and applied in the export.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.data.pipeline import AUTOTUNE, TextPipeline, length_grouped_batches, steps_per_epoch
from tfbert.data.qa import QaDataset, Question
from tfbert.data.qa_builtin import load_builtin_dataset
from tfbert.data.windows import cut_windows
from tfbert.encoders.bert import INPUT_KEYS
from tfbert.encoders.layer import encoder_layer
from tfbert.export.qa import SERVING_GRAPH, QaLayout, QaReader, context_pieces, export_qa, question_pieces
from tfbert.export.tagger import require_offsets
from tfbert.metrics.qa import best_threshold, format_qa_report, qa_metrics
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.catalog import QaSpec, layout_of

# --------------------------------------------------------------------------- training windows


@dataclass
class Windows:
    question: tf.RaggedTensor  # int32 [windows, (question pieces)]
    context: tf.RaggedTensor  # int32 [windows, (window pieces)]
    labels: np.ndarray  # int32 [windows, 2]: start and end position in the packed window, 0 ([CLS]) if not in it
    item: np.ndarray  # the question of each window
    facts: dict


def answer_pieces(context: str, answer: tuple[str, int], starts: np.ndarray, limits: np.ndarray) -> tuple[int, int]:
    """The first and last wordpiece (indices into the context's pieces) covering the answer; (-1, -1) if no piece
    does (an answer of only spaces or dropped characters)."""
    text, at = answer
    byte_start = len(context[:at].encode("utf-8"))
    byte_end = byte_start + len(text.encode("utf-8"))
    first = int(np.searchsorted(limits, byte_start, side="right"))
    last = int(np.searchsorted(starts, byte_end, side="left")) - 1
    return (first, last) if first <= last and first < len(starts) else (-1, -1)


def make_windows(preprocess, questions: list[Question], layout: QaLayout, chunk: int = 1024) -> Windows:
    """Every question paired with every window of its context, labelled with the first gold answer's pieces."""
    q_parts, w_parts, labels, items = [], [], [], []
    lost, long_questions, multi = 0, 0, 0
    for at in range(0, len(questions), chunk):
        part = questions[at:at + chunk]
        q_full = preprocess.tokenize(tf.constant([q.question for q in part])).merge_dims(-2, -1)
        long_questions += int((q_full.row_lengths().numpy() > layout.max_query_length).sum())
        q = question_pieces(preprocess, tf.constant([q.question for q in part]), layout)
        ids, starts, limits = context_pieces(preprocess, tf.constant([q.context for q in part]))
        windows, item, window_start = cut_windows(ids, layout.size, layout.step)
        item, window_start = item.numpy(), window_start.numpy()
        window_length = windows.row_lengths().numpy()
        q_length = q.row_lengths().numpy()
        multi += int((np.bincount(item, minlength=len(part)) > 1).sum())
        spans = []
        for i, question in enumerate(part):
            span = (-1, -1)
            if question.answers:
                span = answer_pieces(question.context, question.answers[0], starts[i].numpy(), limits[i].numpy())
                lost += span[0] < 0
            spans.append(span)
        spans = np.asarray(spans, np.int64).reshape(-1, 2)[item]
        first = q_length[item] + 2
        inside = (spans[:, 0] >= 0) & (spans[:, 0] >= window_start) & (spans[:, 1] < window_start + window_length)
        labels.append(np.where(inside[:, None], spans - window_start[:, None] + first[:, None], 0).astype(np.int32))
        q_parts.append(tf.gather(q, item))
        w_parts.append(windows)
        items.append(item + at)
    labels = np.concatenate(labels) if labels else np.zeros((0, 2), np.int32)
    facts = {"questions": len(questions), "windows": int(len(labels)), "contexts_over_one_window": multi,
             "questions_cut": long_questions, "answers_without_pieces": lost,
             "windows_with_answer": int((labels[:, 0] > 0).sum())}
    return Windows(tf.concat(q_parts, 0), tf.concat(w_parts, 0), labels, np.concatenate(items), facts)


def window_dataset(pipe: TextPipeline, w: Windows, batch_size: int, *, shuffle: bool = False, seed: int = 0):
    ds = tf.data.Dataset.from_tensor_slices((w.question, w.context, w.labels))
    if shuffle:
        ds = length_grouped_batches(ds, len(w.labels), batch_size, seed=seed,
                                    lengths=lambda q, c, _: q.row_lengths() + c.row_lengths())
    else:
        ds = ds.ragged_batch(batch_size)
    return ds.map(lambda q, c, y: (pipe.pack([q, c]), y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


# --------------------------------------------------------------------------- model and loss


class PaddingMask(keras.layers.Layer):
    """Span logits [batch, seq, 2] -> float32, padding positions pushed to -1e4 (never an answer, no loss mass)."""

    def call(self, inputs):
        logits, mask = inputs
        return tf.where(mask[:, :, None] > 0, tf.cast(logits, tf.float32), -1e4)


def build_span_model(encoder_handle: str, *, dropout: float = 0.1, freeze_encoder: bool = False,
                     freeze_word_embeddings: bool = False, seed: int = 0) -> keras.Model:
    """Encoder inputs dict -> start/end logits [batch, seq, 2] (BERT's SQuAD head: one Dense over each position)."""
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    encoder = encoder_layer(encoder_handle, freeze_encoder=freeze_encoder,
                            freeze_word_embeddings=freeze_word_embeddings)
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(encoder(inputs)["sequence_output"])
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
                                name="span_logits")(x)
    return keras.Model(inputs, PaddingMask(name="padding_mask", dtype="float32")([logits, inputs["input_mask"]]),
                       name="span_reader")


def span_loss(labels, logits):
    """Mean of the start and end cross-entropies (labels int [batch, 2], logits [batch, seq, 2])."""
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    start = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[:, 0], logits[:, :, 0])
    end = tf.nn.sparse_softmax_cross_entropy_with_logits(labels[:, 1], logits[:, :, 1])
    return (start + end) / 2


# --------------------------------------------------------------------------- scoring


def answer_questions(reader: QaReader, questions: list[Question], threshold: float | None) -> tuple[list[str], dict]:
    """The reader's answers ("" = no answer; threshold None: always the best span) and its raw outputs."""
    out = reader.read([q.question for q in questions], [q.context for q in questions])
    answered = out["valid"] & (out["diff"] > threshold) if threshold is not None else out["valid"]
    return [s if a else "" for s, a in zip(out["span"], answered)], out


def score(reader: QaReader, questions: list[Question], no_answer: bool, threshold: float | None = None) -> dict:
    """SQuAD metrics; for no-answer data the threshold is the given one or, if None, the best on these questions."""
    golds = [q.answer_texts for q in questions]
    spans, out = answer_questions(reader, questions, None)
    if not no_answer:
        return qa_metrics(golds, spans)
    if threshold is None:
        threshold = best_threshold(golds, spans, out["diff"])
    predictions = [s if d > threshold else "" for s, d in zip(spans, out["diff"])]
    return {**qa_metrics(golds, predictions, splits=True), "threshold": float(threshold)}


class SquadF1(keras.callbacks.Callback):
    """Adds val_f1 and val_exact (SQuAD, 0-100) to the epoch logs, answering the validation questions with the
    model being trained through the export's decoding; no-answer models are scored at the threshold best for this
    epoch's weights, as the final one will be tuned."""

    def __init__(self, task: QaTask, data: QaDataset, config):
        super().__init__()
        self.task, self.data, self.config = task, data, config

    def on_epoch_end(self, epoch, logs=None):
        reader = self.task.reader(self.model, self.task.preprocess, self.config, self.data)
        metrics = score(reader, self.data.valid, self.data.has_no_answer)
        if logs is not None:
            logs["val_f1"], logs["val_exact"] = metrics["f1"], metrics["exact"]


# --------------------------------------------------------------------------- the task


class QaTask(QaSpec, Task):
    """Extractive QA over SQuAD-style data: start/end head, windows over long contexts, SQuAD F1 on validation."""


    def __init__(self):
        self._windows = {}
        self._reader = None
        self.preprocess = None  # the run's preprocess model, for the validation callback


    def check_encoder(self, preprocess, handles) -> None:
        require_offsets(preprocess, handles.preprocess)

    def reader(self, model, preprocess, config, data: QaDataset) -> QaReader:
        if self._reader is None or self._reader.core is not model:
            self._reader = QaReader(preprocess, model, layout_of(config), no_answer=data.has_no_answer)
        return self._reader

    def datasets(self, data: QaDataset, inputs, config, log=print) -> Datasets:
        layout = layout_of(config)
        preprocess = self.preprocess = inputs.preprocess
        for name in ("train", "valid", "test"):
            self._windows[name] = make_windows(preprocess, getattr(data, name), layout)
        facts = {name: w.facts for name, w in self._windows.items()}
        cut = {"long_texts": "windows", "window": layout.size, "layout": layout.to_dict(),
               "splits": {name: {"rows": f["questions"], "rows_cut": f["questions_cut"], **f}
                          for name, f in facts.items()}}
        note = (f"Long texts (windows): contexts are read in windows of {layout.size} wordpieces overlapping by "
                f"{layout.doc_stride} (--max-seq-length {layout.max_seq_length} less a question of up to "
                f"{layout.max_query_length} and 3 special tokens): " + "; ".join(
                    f"{name} {f['questions']} questions -> {f['windows']} windows ({f['contexts_over_one_window']} "
                    f"contexts over one window, {f['questions_cut']} questions cut to --max-query-length, "
                    f"{f['answers_without_pieces']} answers without wordpieces)" for name, f in facts.items()) + ".")
        data.notes.append(note)
        log(f"data: {note}")
        pipe = inputs.pipeline(has_pairs=True)
        train = self._windows["train"]
        return Datasets(window_dataset(pipe, train, config.batch_size, shuffle=True, seed=config.seed),
                        window_dataset(pipe, self._windows["valid"], 2 * config.batch_size),
                        steps_per_epoch(len(train.labels), config.batch_size), truncation=cut)

    def build_model(self, encoder_handle: str, data: QaDataset, config):
        return build_span_model(encoder_handle, dropout=config.dropout, freeze_encoder=config.freeze_encoder,
                                freeze_word_embeddings=config.freeze_word_embeddings, seed=config.seed)

    def compile_args(self, data: QaDataset, config) -> dict:
        return {"loss": span_loss}

    def validation_callback(self, data: QaDataset, datasets: Datasets, config):
        return SquadF1(self, data, config)

    def after_training(self, model, data: QaDataset, inputs, config, log=print) -> dict:
        if not data.has_no_answer:
            return {}
        threshold = score(self.reader(model, inputs.preprocess, config, data), data.valid, True)["threshold"]
        log(f"no-answer threshold tuned on validation: answer when span score - null score > {threshold:.4f}")
        return {"no_answer_threshold": threshold}

    def score_export(self, client, data: QaDataset):
        return client.score(data.test)

    def report(self, metrics: dict) -> str:
        return format_qa_report(metrics)

    def headline(self, metrics: dict) -> str:
        return f"test exact match {metrics['exact']:.2f}, F1 {metrics['f1']:.2f} (SQuAD, 0-100)"

    def export(self, model, handles, data: QaDataset, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        return export_qa(model, handles.preprocess, layout_of(config), base, no_answer=data.has_no_answer,
                         threshold=fitted.get("no_answer_threshold", 0.0), metadata=metadata,
                         log=log), {"serving_graph": SERVING_GRAPH}

    def example_data(self, directory, rows: int = 48) -> dict:
        """Built-in tweet questions: train as SQuAD v2.0 JSON, valid and test as JSONL."""
        data = load_builtin_dataset()
        parts = {"train": data.train[:rows], "valid": data.valid[: rows // 2], "test": data.test[: rows // 2]}
        settings = {}
        for split, questions in parts.items():
            if split == "train":
                path = directory / "train.json"
                paragraphs = [{"context": q.context, "qas": [
                    {"id": q.id, "question": q.question, "is_impossible": not q.answers,
                     "answers": [{"text": t, "answer_start": s} for t, s in q.answers]}]} for q in questions]
                path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "tweets", "paragraphs": paragraphs}]}),
                                encoding="utf-8")
            else:
                path = directory / f"{split}.jsonl"
                path.write_text("".join(json.dumps(
                    {"id": q.id, "question": q.question, "context": q.context,
                     "answers": {"text": [t for t, _ in q.answers], "answer_start": [s for _, s in q.answers]}})
                    + "\n" for q in questions), encoding="utf-8")
            settings[f"{split}_file"] = str(path)
        return settings

    def summary_extras(self, data: QaDataset) -> dict:
        return {"train_windows": self._windows["train"].facts["windows"] if "train" in self._windows else None}
