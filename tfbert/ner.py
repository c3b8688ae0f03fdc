"""Named-entity recognition: word tags aligned to wordpieces, a token-classification head, training, metrics.

    python -m tfbert.train --task ner                     # built-in Twitter NER corpus, embedded MiniLM encoder
    python -m tfbert.train --task ner --train-file train.conll --valid-file dev.conll --test-file test.conll

Each word's tag sits on its first wordpiece; its ## continuation pieces, [CLS], [SEP] and padding get
label -1 and are left out of the loss and the metrics (see `align` for words the basic tokenizer splits).
The run folder, optimizer, schedule, checkpoints and early stopping are those of text classification
(tfbert/train.py); the export is in tfbert/ner_export.py.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras

from tfbert.bert import INPUT_KEYS
from tfbert.model import encoder_layer, make_optimizer
from tfbert.ner_metrics import entity_f1, entity_metrics, format_ner_report
from tfbert.pipeline import AUTOTUNE, BUCKET_BOUNDARIES, TextPipeline

IGNORE = -1  # label of the positions without a word tag


# --------------------------------------------------------------------------- alignment


def unk_id(preprocess) -> int:
    """The [UNK] id, asked of the tokenizer itself: a word longer than the wordpiece limit (100 bytes in BERT
    tokenizers) becomes a single [UNK]. Works for any TF Hub preprocess model, vocabulary file or not."""
    ids = preprocess.tokenize(tf.constant(["x" * 400])).flat_values.numpy()
    if len(ids) != 1:
        raise ValueError(f"cannot find the [UNK] id: a 400-character word tokenized to {len(ids)} pieces")
    return int(ids[0])


@dataclass
class Aligned:
    ids: tf.RaggedTensor  # int32 [sentences, wordpieces]
    labels: tf.RaggedTensor  # int32 [sentences, wordpieces]: the word's tag id on its first piece, IGNORE elsewhere
    n_words: list[int]


def continuation_tags(tags: list[str]) -> list[int]:
    """Tag id -> the id of the tag its word's later sub-words get: I-TYPE inside an entity, O outside."""
    return [tags.index("I-" + t[2:]) if t != "O" else 0 for t in tags]


def align(preprocess, sentences: list[list[str]], tag_ids: list[list[int]] | None = None, unk: int | None = None,
          continuation: list[int] | None = None, chunk: int = 8192) -> Aligned:
    """Tokenizes every word on its own, so each word's pieces are known even when the basic tokenizer splits it
    (don't -> don ' t), and regroups the pieces per sentence. The word's tag goes on its first wordpiece.

    The basic tokenizer's sub-words after the first (the ' and t of don't, the user of @user) are masked like
    ## continuations unless `continuation` (from continuation_tags) is given: then their first pieces get the
    continuation tag. Training uses that, because at serving time every tokenizer word is tagged on its own
    and those positions would otherwise never have been trained. A word that yields no piece at all (only
    control or zero-width characters) becomes [UNK], so that every word keeps a position and its tag.
    """
    words = [w for s in sentences for w in s]
    values, subs, pieces = [np.zeros(0, np.int32)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for i in range(0, len(words), chunk):
        t = preprocess.tokenize(tf.constant(words[i:i + chunk]))  # [words, sub-words, wordpieces]
        values.append(t.flat_values.numpy())
        subs.append(t.row_lengths().numpy())
        pieces.append(t.values.row_lengths().numpy())
    values, subs, pieces = (np.concatenate(x) for x in (values, subs, pieces))
    empty = np.flatnonzero(subs == 0)
    if len(empty):
        at_sub = np.cumsum(subs)[empty]
        values = np.insert(values, np.concatenate([[0], np.cumsum(pieces)])[at_sub],
                           unk if unk is not None else unk_id(preprocess))
        pieces = np.insert(pieces, at_sub, 1)
        subs[empty] = 1
    sub_first_piece = np.cumsum(pieces) - pieces
    word_first_sub = np.cumsum(subs) - subs
    labels = np.full(len(values), IGNORE, np.int32)
    if tag_ids is not None:
        word_tags = np.fromiter((t for s in tag_ids for t in s), np.int32, len(words))
        if continuation is not None:
            labels[sub_first_piece] = np.asarray(continuation, np.int32)[np.repeat(word_tags, subs)]
        labels[sub_first_piece[word_first_sub]] = word_tags
    n_words = [len(s) for s in sentences]
    word_pieces = np.bincount(np.repeat(np.arange(len(words)), subs), weights=pieces, minlength=len(words))
    per_sentence = np.bincount(np.repeat(np.arange(len(sentences)), n_words), weights=word_pieces,
                               minlength=len(sentences)).astype(np.int64)
    return Aligned(tf.RaggedTensor.from_row_lengths(values.astype(np.int32), per_sentence),
                   tf.RaggedTensor.from_row_lengths(labels, per_sentence), n_words)


def pack_tagged(pipe: TextPipeline, ids: tf.RaggedTensor, labels: tf.RaggedTensor):
    """Packs a batch like text classification does ([CLS] pieces [SEP], padded to the batch's longest) and lays
    the labels over the same positions. Cut here first, so the pieces kept are exactly those labelled."""
    keep = pipe.max_seq_length - 2
    inputs = pipe.pack([ids[:, :keep]])
    width = tf.shape(inputs["input_word_ids"])[1]
    y = labels[:, :keep].to_tensor(IGNORE, shape=tf.stack([labels.nrows(), tf.cast(width - 2, tf.int64)]))
    return inputs, tf.pad(y, [[0, 0], [1, 1]], constant_values=IGNORE)


def tagging_dataset(pipe: TextPipeline, data: Aligned, batch_size: int, *, shuffle: bool = False, seed: int = 0):
    """(encoder inputs, labels [batch, seq]) batches; training batches are reshuffled and bucketed by length."""
    ds = tf.data.Dataset.from_tensor_slices((data.ids, data.labels))
    if shuffle:
        ds = ds.shuffle(len(data.n_words), seed=seed, reshuffle_each_iteration=True)
        boundaries = tf.constant(BUCKET_BOUNDARIES, tf.int64)
        ds = ds.group_by_window(lambda ids, _: tf.reduce_sum(tf.cast(tf.size(ids, tf.int64) > boundaries, tf.int64)),
                                lambda _, w: w.ragged_batch(batch_size), window_size=batch_size)
    else:
        ds = ds.ragged_batch(batch_size)
    return ds.map(lambda ids, y: pack_tagged(pipe, ids, y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


# --------------------------------------------------------------------------- model, loss, metric


def build_tagger(encoder_handle: str, num_tags: int, *, dropout: float = 0.1, freeze_encoder: bool = False,
                 freeze_word_embeddings: bool = False, seed: int = 0) -> keras.Model:
    """Encoder inputs dict -> tag logits [batch, seq, num_tags] (one per wordpiece)."""
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    encoder = encoder_layer(encoder_handle, freeze_encoder=freeze_encoder,
                            freeze_word_embeddings=freeze_word_embeddings)
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(encoder(inputs)["sequence_output"])
    logits = keras.layers.Dense(num_tags, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
                                name="tag_logits")(x)
    return keras.Model(inputs, logits, name="tagger")


def masked_tag_loss(labels, logits):
    """Mean cross-entropy over the labelled positions only; padding does not dilute it."""
    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(labels != IGNORE, tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(labels, 0), tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class TagAccuracy(keras.metrics.Mean):
    """Share of labelled positions (first wordpiece of a word) whose tag is predicted right."""

    def __init__(self, name="tag_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, labels, logits, sample_weight=None):
        labels = tf.cast(labels, tf.int32)
        hit = tf.cast(tf.equal(labels, tf.argmax(logits, -1, output_type=tf.int32)), tf.float32)
        return super().update_state(hit, sample_weight=tf.cast(labels != IGNORE, tf.float32))


def predict_tags(model, dataset, n_words: list[int], tags: list[str]) -> list[list[str]]:
    """Word-level tag names per sentence (dataset in sentence order). Words cut off by --max-seq-length get O."""
    predicted = []
    for inputs, labels in dataset:
        best = np.argmax(model.predict_on_batch(inputs), axis=-1)
        labels = labels.numpy()
        predicted += [row[lab != IGNORE] for row, lab in zip(best, labels)]
    return [[tags[i] for i in p] + ["O"] * (n - len(p)) for p, n in zip(predicted, n_words)]


class EntityF1(keras.callbacks.Callback):
    """Adds `val_entity_f1` (micro, seqeval) to the epoch logs for EarlyStopping and ModelCheckpoint."""

    def __init__(self, dataset, gold: list[list[str]], tags: list[str]):
        super().__init__()
        self.dataset, self.gold, self.tags = dataset, gold, tags

    def on_epoch_end(self, epoch, logs=None):
        predicted = predict_tags(self.model, self.dataset, [len(g) for g in self.gold], self.tags)
        if logs is not None:
            logs["val_entity_f1"] = entity_f1(self.gold, predicted)


# --------------------------------------------------------------------------- the job


def train_ner(a: argparse.Namespace, log=print) -> dict:
    """`python -m tfbert.train --task ner`: the whole job; returns a summary with the export path and test metrics."""
    from tfbert import reports
    from tfbert.callbacks import training_callbacks
    from tfbert.distribute import make_strategy
    from tfbert.ner_data import load_ner_dataset
    from tfbert.ner_export import export_tagger, require_offsets
    from tfbert.train import (_prepare_run_dir, _read_history, finish_run, output_base, resolve_run_encoder,
                              validate_args)

    validate_args(a)
    t_start = time.time()
    keras.utils.set_random_seed(a.seed)
    data = load_ner_dataset(a.train_file, a.valid_file, a.test_file, seed=a.seed,
                            max_train_examples=a.max_train_examples, min_sentences=a.batch_size)
    for note in data.notes:
        log(f"data: {note}")
    log(f"data: {len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test sentences; "
        f"{len(data.types)} entity types: {', '.join(data.types)}")
    for flag in ("pooling", "class_weights"):
        if getattr(a, flag) != _parser_default(flag):
            log(f"warning: --{flag.replace('_', '-')} does not apply to --task ner; ignored")

    handles = resolve_run_encoder(a, log)
    preprocess = hub.load(handles.preprocess)
    require_offsets(preprocess, handles.preprocess)  # the export needs it: fail before training, not after

    base = output_base(a, log)
    run_dir = base / "runs" / "in-progress"
    config = dict(vars(a), encoder_handles={"preprocess": handles.preprocess, "encoder": handles.encoder},
                  precision_used=handles.precision,
                  tags=data.tags)
    _prepare_run_dir(run_dir, config, log)

    tag_index = {t: i for i, t in enumerate(data.tags)}
    unk = unk_id(preprocess)
    # Valid/test label only each word's first piece: predict_tags reads the word tags from those positions.
    aligned = {name: align(preprocess, [s.tokens for s in split], [[tag_index[t] for t in s.tags] for s in split], unk,
                           continuation_tags(data.tags) if name == "train" else None)
               for name, split in (("train", data.train), ("valid", data.valid), ("test", data.test))}
    cut = {name: int(np.sum(al.ids.row_lengths().numpy() > a.max_seq_length - 2)) for name, al in aligned.items()}
    if any(cut.values()):
        log(f"data: sentences longer than --max-seq-length {a.max_seq_length} wordpieces (their tail words count "
            "as O): " + ", ".join(f"{k} {v}" for k, v in cut.items()))
    pipe = TextPipeline(preprocess, a.max_seq_length)
    train_ds = tagging_dataset(pipe, aligned["train"], a.batch_size, shuffle=True, seed=a.seed)
    valid_ds = tagging_dataset(pipe, aligned["valid"], 2 * a.batch_size)
    steps = -(-len(data.train) // a.batch_size)
    epochs = max(a.epochs, math.ceil(a.min_steps / steps))
    if epochs > a.epochs:
        log(f"training for up to {epochs} epochs ({steps} steps each) to reach --min-steps {a.min_steps}")

    with make_strategy(a.strategy, log=log).scope():
        model = build_tagger(handles.encoder, len(data.tags), dropout=a.dropout, freeze_encoder=a.freeze_encoder,
                             freeze_word_embeddings=a.freeze_word_embeddings, seed=a.seed)
        model.compile(make_optimizer(a.learning_rate, steps * epochs, a.warmup_fraction, a.weight_decay),
                      loss=masked_tag_loss, metrics=[TagAccuracy()])
    verbose = a.verbose if a.verbose is not None else (1 if sys.stdout.isatty() else 2)
    callbacks, best = training_callbacks(run_dir, EntityF1(valid_ds, [s.tags for s in data.valid], data.tags),
                                         "val_entity_f1", patience=a.patience, steps_per_epoch=steps,
                                         batch_size=a.batch_size, verbose=verbose, log=log)
    t_fit = time.time()
    trained_marker = run_dir / "training_done.json"  # as in classification: killed after training -> no retraining
    if trained_marker.is_file():
        log(f"training already finished in {run_dir}; evaluating and exporting its best weights")
    else:
        model.fit(train_ds, validation_data=valid_ds, epochs=epochs, callbacks=callbacks, verbose=verbose)
        reports.write_json(trained_marker, {"fit_seconds": round(time.time() - t_fit, 1)})
    fit_seconds = json.loads(trained_marker.read_text())["fit_seconds"]
    model.load_weights(str(best)).expect_partial()

    test_ds = tagging_dataset(pipe, aligned["test"], 2 * a.batch_size)
    predicted = predict_tags(model, test_ds, aligned["test"].n_words, data.tags)
    metrics = entity_metrics([s.tags for s in data.test], predicted)
    log(format_ner_report(metrics))

    version = export_tagger(model, handles.preprocess, data.tags, base, max_seq_length=a.max_seq_length, log=log)
    history = _read_history(run_dir / "history.csv")
    if history:
        reports.plot_history(history, run_dir / "training_curves.png")
    summary = {"export": str(version), "test": metrics, "epochs_run": len(history.get("loss", [])),
               "best_val_entity_f1": max(history.get("val_entity_f1", [float("nan")])),
               "train_sentences": len(data.train), "truncated_sentences": cut, "fit_seconds": round(fit_seconds, 1),
               "total_seconds": round(time.time() - t_start, 1), "data_notes": data.notes}
    final_run = finish_run(run_dir, base, version, summary)
    micro = metrics["micro"] or {"f1": float("nan")}
    log(f"test entity micro-F1 {micro['f1']:.4f}, token accuracy {metrics['token_accuracy']:.4f}; model: {version}; "
        f"run folder: {final_run}; {summary['total_seconds']:.0f}s in all")
    return summary


def _parser_default(key: str):
    from tfbert.train import build_parser
    return build_parser().get_default(key)
