"""Named-entity recognition: word tags aligned to wordpieces, a token-classification head, training, metrics.

    python -m tfbert.train --task ner                     # built-in Twitter NER corpus, embedded MiniLM encoder
    python -m tfbert.train --task ner --train-file train.conll --valid-file dev.conll --test-file test.conll

Each word's tag sits on its first wordpiece; its ## continuation pieces, [CLS], [SEP] and padding get
label -1 and are left out of the loss and the metrics (see `align` for words the basic tokenizer splits).
The run folder, optimizer, schedule, checkpoints and early stopping are the one loop's (tfbert/fit.py); the
export is in tfbert/export/tagger.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert.data.long_texts import log_truncation, share, truncation_stats, window
from tfbert.data.pipeline import AUTOTUNE, TextPipeline, length_grouped_batches, steps_per_epoch
from tfbert.data.tagged import NerDataset, load_ner_dataset
from tfbert.data.windows import BEST_CONTEXT, best_context, cut_windows
from tfbert.encoders.bert import INPUT_KEYS
from tfbert.encoders.layer import encoder_layer
from tfbert.export.serving_core import SERVING_CHECK_TEXTS
from tfbert.export.tagger import export_tagger, require_offsets
from tfbert.metrics.entities import entity_f1, format_ner_report
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.catalog import NerSpec

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
    word_starts: np.ndarray  # per word (flat, sentence order): its first wordpiece's position in its sentence


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
    word_pieces = word_pieces.astype(np.int64)
    sentence_start = np.repeat(np.cumsum(per_sentence) - per_sentence, n_words)
    return Aligned(tf.RaggedTensor.from_row_lengths(values.astype(np.int32), per_sentence),
                   tf.RaggedTensor.from_row_lengths(labels, per_sentence), n_words,
                   np.cumsum(word_pieces) - word_pieces - sentence_start)


def tagging_truncation(aligned: dict[str, Aligned], max_seq_length: int, pipe: TextPipeline | None = None) -> dict:
    """tfbert.data.long_texts' truncation report per split, plus the words cut: a word whose first wordpiece is
    past the window (under --long-texts windows: past the reach of --max-windows windows) has no position, so it
    is predicted O (one with only its ## pieces cut keeps its tag)."""
    windows = pipe.window_settings() if pipe is not None else None
    windows = windows and {**windows, "pooling": BEST_CONTEXT}  # a word is read from one window, not pooled
    keep = windows["reach"] if windows else window(max_seq_length, 1)
    splits = {}
    for name, al in aligned.items():
        stats = truncation_stats([al.ids.row_lengths().numpy()], keep)
        words_cut = int((al.word_starts >= keep).sum())
        splits[name] = {**stats, "words": int(al.word_starts.size), "words_cut": words_cut,
                        "words_cut_share": share(words_cut, al.word_starts.size)}
    if windows:
        return {"long_texts": "windows", "window": windows["size"], "windows": windows, "splits": splits}
    return {"long_texts": "truncate", "window": keep, "splits": splits}


def tag_windows(pipe: TextPipeline, ids: tf.RaggedTensor, labels: tf.RaggedTensor):
    """--long-texts windows: sentences' ids and labels [sentences, (pieces)] -> every window of every sentence as
    (ids, labels [windows, (<= window)]), each window with its own slice of the labels, cut by the one function
    that cuts windows in the export (tfbert.data.windows.cut_windows); plus the windows' sentence and start."""
    ids, labels = ids[:, :pipe.reach], labels[:, :pipe.reach]
    window_ids, item, start = cut_windows(ids, pipe.window, pipe.stride, pipe.max_windows)
    window_labels, _, _ = cut_windows(labels, pipe.window, pipe.stride, pipe.max_windows)
    return window_ids, window_labels, item, start


def word_reads(pipe: TextPipeline, data: Aligned) -> np.ndarray:
    """--long-texts windows: for every word (flat, sentence order), the flat index of the window position its tag
    is read from (tfbert.data.windows.best_context: the window where it has most context on both sides), as
    `predict_tags` flattens the windows' positions; -1 for a word past the reach (predicted O)."""
    ids = data.ids[:, :pipe.reach]
    window_ids, item, start = cut_windows(ids, pipe.window, pipe.stride, pipe.max_windows)
    best = best_context(ids, item, start, window_ids.row_lengths())
    lengths = ids.row_lengths().numpy()
    sentence = np.repeat(np.arange(len(data.n_words)), data.n_words)
    read = data.word_starts < lengths[sentence]
    piece = best.row_starts().numpy()[sentence] + np.where(read, data.word_starts, 0)
    return np.where(read, best.flat_values.numpy()[piece] if piece.size else piece, -1)


def pack_tagged(pipe: TextPipeline, ids: tf.RaggedTensor, labels: tf.RaggedTensor):
    """Packs a batch like text classification does ([CLS] pieces [SEP], padded to the batch's longest) and lays
    the labels over the same positions. Cut here first, so the pieces kept are exactly those labelled."""
    keep = pipe.max_seq_length - 2
    inputs = pipe.pack([ids[:, :keep]])
    width = tf.shape(inputs["input_word_ids"])[1]
    y = labels[:, :keep].to_tensor(IGNORE, shape=tf.stack([labels.nrows(), tf.cast(width - 2, tf.int64)]))
    return inputs, tf.pad(y, [[0, 0], [1, 1]], constant_values=IGNORE)


def tagging_examples(pipe: TextPipeline, data: Aligned) -> tuple:
    """(ids, labels) of the examples a split makes: its sentences, or under --long-texts windows every window of
    them in sentence order (tag_windows)."""
    if pipe.long_texts == "windows":
        return tag_windows(pipe, data.ids, data.labels)[:2]
    return data.ids, data.labels


def tagging_dataset(pipe: TextPipeline, data: Aligned, batch_size: int, *, shuffle: bool = False, seed: int = 0):
    """(encoder inputs, labels [batch, seq]) batches; training batches are reshuffled and grouped by length. Under
    --long-texts windows an example is a window (`tagging_examples`), in order when not shuffled."""
    ids, labels = tagging_examples(pipe, data)
    ds = tf.data.Dataset.from_tensor_slices((ids, labels))
    if shuffle:
        ds = length_grouped_batches(ds, int(ids.nrows()), batch_size, lambda ids, _: ids.row_lengths(), seed=seed)
    else:
        ds = ds.ragged_batch(batch_size)
    return ds.map(lambda ids, y: pack_tagged(pipe, ids, y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


# --------------------------------------------------------------------------- model, loss, metric


def tag_head(outputs: dict, num_tags: int, *, dropout: float = 0.1, seed: int = 0, prefix: str = ""):
    """The tagger's head on an encoder's outputs: Dropout -> Dense over sequence_output, logits [batch, seq, tags]."""
    x = keras.layers.Dropout(dropout, seed=seed, name=f"{prefix}head_dropout")(outputs["sequence_output"])
    return keras.layers.Dense(num_tags, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
                              name=f"{prefix}tag_logits")(x)


def build_tagger(encoder_handle: str, num_tags: int, *, dropout: float = 0.1, freeze_encoder: bool = False,
                 freeze_word_embeddings: bool = False, seed: int = 0) -> keras.Model:
    """Encoder inputs dict -> tag logits [batch, seq, num_tags] (one per wordpiece)."""
    inputs = {k: keras.Input(shape=(None,), dtype=tf.int32, name=k) for k in INPUT_KEYS}
    encoder = encoder_layer(encoder_handle, freeze_encoder=freeze_encoder,
                            freeze_word_embeddings=freeze_word_embeddings)
    return keras.Model(inputs, tag_head(encoder(inputs), num_tags, dropout=dropout, seed=seed), name="tagger")


def masked_tag_loss(labels, logits):
    """Cross-entropy averaged over the batch's labelled positions only (padding does not dilute it), returned per
    example as its share of that average times the batch size: Keras' mean over the batch gives the average, and a
    sample weight applies per sentence (a multitask batch of another head weighs 0: tfbert.tasks.multitask)."""
    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(labels != IGNORE, tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(labels, 0), tf.cast(logits, tf.float32))
    rows = tf.cast(tf.shape(labels)[0], tf.float32)
    return tf.reduce_sum(ce * mask, axis=-1) * rows / tf.maximum(tf.reduce_sum(mask), 1.0)


class TagAccuracy(keras.metrics.Mean):
    """Share of labelled positions (first wordpiece of a word) whose tag is predicted right."""

    def __init__(self, name="tag_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, labels, logits, sample_weight=None):
        labels = tf.cast(labels, tf.int32)
        hit = tf.cast(tf.equal(labels, tf.argmax(logits, -1, output_type=tf.int32)), tf.float32)
        return super().update_state(hit, sample_weight=tf.cast(labels != IGNORE, tf.float32))


def predict_tags(model, dataset, n_words: list[int], tags: list[str], reads: np.ndarray | None = None) \
        -> list[list[str]]:
    """Word-level tag names per sentence (dataset in sentence order). Words cut off by --max-seq-length get O.
    Under --long-texts windows (dataset: the windows in order), `reads` (word_reads) says which window position
    each word's tag is read from."""
    if reads is not None:
        pieces = []  # every window position's predicted tag, window after window
        for inputs, _ in dataset:
            best = np.argmax(model.predict_on_batch(inputs), axis=-1)
            lengths = inputs["input_mask"].numpy().sum(-1) - 2  # less [CLS] and [SEP]
            pieces += [row[1:1 + n] for row, n in zip(best, lengths)]
        flat = np.concatenate(pieces + [np.zeros(0, np.int64)])
        word = np.where(reads >= 0, flat[np.maximum(reads, 0)] if flat.size else 0, 0)  # 0: O
        ends = np.cumsum(n_words)
        return [[tags[i] for i in word[e - n:e]] for n, e in zip(n_words, ends)]
    predicted = []
    for inputs, labels in dataset:
        best = np.argmax(model.predict_on_batch(inputs), axis=-1)
        labels = labels.numpy()
        predicted += [row[lab != IGNORE] for row, lab in zip(best, labels)]
    return [[tags[i] for i in p] + ["O"] * (n - len(p)) for p, n in zip(predicted, n_words)]


class EntityF1(keras.callbacks.Callback):
    """Adds `val_entity_f1` (micro, seqeval) to the epoch logs for EarlyStopping and ModelCheckpoint."""

    def __init__(self, dataset, gold: list[list[str]], tags: list[str], reads: np.ndarray | None = None):
        super().__init__()
        self.dataset, self.gold, self.tags, self.reads = dataset, gold, tags, reads

    def on_epoch_end(self, epoch, logs=None):
        predicted = predict_tags(self.model, self.dataset, [len(g) for g in self.gold], self.tags, self.reads)
        if logs is not None:
            logs["val_entity_f1"] = entity_f1(self.gold, predicted)


# --------------------------------------------------------------------------- the task


class NerTask(NerSpec, Task):
    """Named-entity recognition over BIO word tags: token head, masked cross-entropy, entity F1 on validation."""


    def check_encoder(self, preprocess, handles) -> None:
        require_offsets(preprocess, handles.preprocess)  # the export needs it: fail before training, not after

    def __init__(self):
        self._aligned_splits = None  # wordpiece-aligned splits, made once per run (a task object is one run's)
        self.valid_reads = None  # under --long-texts windows, where each validation word is read (datasets)

    def _aligned(self, data: NerDataset, preprocess) -> dict[str, Aligned]:
        if self._aligned_splits is None:
            tag_index = {t: i for i, t in enumerate(data.tags)}
            unk = unk_id(preprocess)
            # Valid/test label only each word's first piece: predict_tags reads the word tags from those positions.
            self._aligned_splits = {
                name: align(preprocess, [s.tokens for s in split], [[tag_index[t] for t in s.tags] for s in split],
                            unk, continuation_tags(data.tags) if name == "train" else None)
                for name, split in (("train", data.train), ("valid", data.valid), ("test", data.test))}
        return self._aligned_splits

    def datasets(self, data: NerDataset, inputs, config, log=print) -> Datasets:
        aligned = self._aligned(data, inputs.preprocess)
        pipe = inputs.pipeline()
        cut = tagging_truncation(aligned, config.max_seq_length, pipe)
        log_truncation(cut, config.max_seq_length, data.notes, log, "sentences")
        if pipe.long_texts == "windows":
            self.valid_reads = word_reads(pipe, aligned["valid"])
        # Windows: every window is an example, counted from the very windows the dataset holds.
        n_train = int(tagging_examples(pipe, aligned["train"])[0].nrows())
        return Datasets(tagging_dataset(pipe, aligned["train"], config.batch_size, shuffle=True, seed=config.seed),
                        tagging_dataset(pipe, aligned["valid"], 2 * config.batch_size),
                        steps_per_epoch(n_train, config.batch_size), truncation=cut)

    def build_model(self, encoder_handle: str, data: NerDataset, config):
        return build_tagger(encoder_handle, len(data.tags), dropout=config.dropout,
                            freeze_encoder=config.freeze_encoder,
                            freeze_word_embeddings=config.freeze_word_embeddings, seed=config.seed)

    def head(self, inputs, outputs, data: NerDataset, config, prefix: str = "", seed: int = 0):
        return tag_head(outputs, len(data.tags), dropout=config.dropout, seed=seed, prefix=prefix)

    def serving_head(self, data: NerDataset, fitted: dict) -> dict:
        return {"serving": "tagger", "tags": list(data.tags)}

    def compile_args(self, data: NerDataset, config) -> dict:
        return {"loss": masked_tag_loss, "metrics": [TagAccuracy()]}

    def constant_score(self, data: NerDataset) -> tuple[str, float]:
        return "no entity in any text", 0.0  # entity F1 of a tagger that tags every word O

    def validation_callback(self, data: NerDataset, datasets: Datasets, config):
        return EntityF1(datasets.valid, [s.tags for s in data.valid], data.tags, self.valid_reads)

    def score_export(self, client, data: NerDataset):
        return client.score(data.test)

    def report(self, metrics: dict) -> str:
        return format_ner_report(metrics)

    def headline(self, metrics: dict) -> str:
        micro = metrics["micro"] or {"f1": float("nan")}
        return f"test entity micro-F1 {micro['f1']:.4f}, token accuracy {metrics['token_accuracy']:.4f}"

    def export(self, model, handles, data: NerDataset, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        facts = {}
        version = export_tagger(model, handles.preprocess, data.tags, base, inputs=inputs.settings,
                                encoder_handle=handles.encoder, check_texts=[" ".join(s.tokens) for s in data.test[:SERVING_CHECK_TEXTS]], info=facts,
                                metadata=metadata, log=log)
        return version, {"serving_graph": facts}

    def example_data(self, directory, rows: int = 48) -> dict:
        """Sentences of the built-in Twitter NER corpus: train as CoNLL, valid and test as JSONL."""
        data = load_ner_dataset()
        parts = {"train": data.train[:rows], "valid": data.valid[: rows // 2], "test": data.test[: rows // 2]}
        settings = {}
        for split, sentences in parts.items():
            if split == "train":
                path = directory / "train.conll"
                text = "".join("".join(f"{w}\t{t}\n" for w, t in zip(s.tokens, s.tags)) + "\n" for s in sentences)
            else:
                path = directory / f"{split}.jsonl"
                text = "".join(json.dumps({"tokens": s.tokens, "tags": s.tags}) + "\n" for s in sentences)
            path.write_text(text, encoding="utf-8")
            settings[f"{split}_file"] = str(path)
        return settings

    def summary_extras(self, data: NerDataset) -> dict:
        return {"train_sentences": len(data.train)}
