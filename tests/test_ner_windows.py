"""--task ner with --long-texts windows: each word is tagged from the window where it has most context on both sides
(tfbert.data.windows.best_context), in evaluation and in the exported graph; training makes every window an example
with its own slice of the tags."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from tfbert.config import ConfigError, RunConfig
from tfbert.data.inputs import InputSettings
from tfbert.data.pipeline import MAX_WINDOWS, TextPipeline, steps_per_epoch
from tfbert.data.windows import best_context, cut_windows, window_count
from tfbert.tasks.ner import IGNORE, NerTask, align, predict_tags, tagging_dataset, tagging_examples, word_reads

TAGS = ["O", "B-loc", "I-loc", "B-person", "I-person"]
WORDS = ["alpha", "zebra", "hello"]  # one wordpiece each in the MiniLM vocabulary (asserted below)


@pytest.fixture(scope="module")
def pre(tiny_pair):
    pre = hub.load(str(tiny_pair / "preprocess"))
    assert pre.tokenize(tf.constant(WORDS)).flat_values.shape == (3,)
    return pre


def _context_tags(input_mask, context: int, inner: int = 1, outer: int = 3):
    """Per packed position: tag `inner` where the position has at least `context` pieces of its window on both
    sides, else `outer` (so which window a word is read from shows in its tag)."""
    mask = tf.cast(input_mask, tf.int32)
    n = tf.reduce_sum(mask, -1, keepdims=True) - 2  # window length, less [CLS] and [SEP]
    j = tf.range(tf.shape(mask)[1])[None, :] - 1
    return tf.where(tf.minimum(j, n - 1 - j) >= context, inner, outer)


class _TagByContext(tf.Module):
    """A stand-in tagger core: B-loc where a position has >= 7 pieces of context on both sides, else B-person."""

    def __call__(self, inputs, training=False):
        return 10.0 * tf.one_hot(_context_tags(inputs["input_mask"], 7), len(TAGS))


def _reference(n: int, size: int, step: int):
    """Brute force: per text position, (window number, position in it) with the most context, earliest on ties."""
    count = int(window_count([n], size, step).numpy()[0])
    starts = [min(k * step, max(n - size, 0)) for k in range(count)]
    best = []
    for p in range(n):
        scores = [(min(p - s, s + min(size, n) - 1 - p), -k, k, p - s) for k, s in enumerate(starts)
                  if s <= p < s + size]
        best.append(max(scores)[2:])
    return best


# --------------------------------------------------------------------------- choosing the window


def test_best_context_picks_the_window_with_most_context_on_both_sides():
    ids = tf.ragged.constant([list(range(10)), [100, 101], [], list(range(200, 207))], dtype=tf.int64)
    windows, item, start = cut_windows(ids, 4, 2, max_windows=3)  # text 0: windows at 0, 2, 4; 8 and 9 unread
    got = best_context(ids, item, start, windows.row_lengths()).to_list()
    # Windows' flat positions: text 0's windows are 0-3, 4-7, 8-11; text 1's 12-13; text 3's 14-17, 18-21, 22-24.
    # Piece 3 is the last of window 0 (context 0) but the second of window 1 (context 1): window 1, flat 5.
    assert got[0] == [0, 1, 2, 5, 6, 9, 10, 11, -1, -1]
    assert got[1] == [12, 13] and got[2] == []
    assert tf.gather(windows.flat_values, [g for g in got[0] if g >= 0]).numpy().tolist() == list(range(8))
    # Against the brute-force rule on many lengths and settings (no cap).
    for size, step in ((4, 2), (5, 3), (6, 6), (7, 1)):
        lengths = [0, 1, size, size + 1, 3 * size + 2, 23]
        ids = tf.ragged.constant([list(range(n)) for n in lengths], dtype=tf.int64, ragged_rank=1, inner_shape=())
        windows, item, start = cut_windows(ids, size, step)
        flat = best_context(ids, item, start, windows.row_lengths()).to_list()
        first = np.concatenate([[0], np.cumsum(windows.row_lengths().numpy())])
        for t, n in enumerate(lengths):
            mine = np.flatnonzero(item.numpy() == t)
            expected = [first[mine[k]] + j for k, j in _reference(n, size, step)]
            assert flat[t] == expected, (size, step, n)


# --------------------------------------------------------------------------- training and evaluation


def test_training_makes_every_window_an_example_with_its_slice_of_the_tags(pre):
    # --max-seq-length 16: windows of 14 advancing by 7. 30 one-piece words: windows at 0, 7, 14, 16; 5 words: one.
    sentences = [["hello"] * 30, ["alpha"] * 5]
    tag_ids = [[(i % 4) + 1 for i in range(30)], [0, 1, 2, 3, 4]]
    aligned = align(pre, sentences, tag_ids)
    pipe = TextPipeline(pre, 16, long_texts="windows")
    rows = []
    for _, y in tagging_dataset(pipe, aligned, 3):
        rows += [r[r != IGNORE].tolist() for r in y.numpy()]  # drops [CLS], [SEP] and padding
    assert rows == [tag_ids[0][s:s + 14] for s in (0, 7, 14, 16)] + [tag_ids[1]]
    n = int(tagging_examples(pipe, aligned)[0].nrows())
    assert n == 5 == int(window_count(aligned.ids.row_lengths(), 14, 7).numpy().sum())
    shuffled = [y.numpy() for _, y in tagging_dataset(pipe, aligned, 2, shuffle=True)]
    assert len(shuffled) == steps_per_epoch(n, 2) == 3  # the planned steps count windows, not sentences
    assert sorted(r[r != IGNORE].tolist() for b in shuffled for r in b) == sorted(rows)


class _ContextModel:
    """predict_on_batch like a Keras tagger: tag 1 where a position has >= 3 pieces of context, else 3."""

    def predict_on_batch(self, inputs):
        return (10.0 * tf.one_hot(_context_tags(inputs["input_mask"], 3), len(TAGS))).numpy()


def test_evaluation_tags_every_word_from_its_best_window(pre):
    # 30 words, one of them 2 pieces ("tokenization", word 10): 31 pieces; windows of 14 by 7 at 0, 7, 14, 17.
    words = ["hello"] * 10 + ["tokenization"] + ["hello"] * 19
    aligned = align(pre, [words, ["alpha"] * 3], [[0] * 30, [0] * 3])
    pipe = TextPipeline(pre, 16, long_texts="windows")
    reads = word_reads(pipe, aligned)
    got = predict_tags(_ContextModel(), tagging_dataset(pipe, aligned, 4), aligned.n_words, TAGS, reads)
    starts = aligned.word_starts[:30]
    best = {p: min(p - s, s + 13 - p) for p, (k, j) in enumerate(_reference(31, 14, 7))
            for s in [[0, 7, 14, 17][k]]}
    assert got[0] == [TAGS[1] if best[p] >= 3 else TAGS[3] for p in starts]
    assert got[0][:3] == [TAGS[3]] * 3 and got[0][3:27] == [TAGS[1]] * 24 and got[0][27:] == [TAGS[3]] * 3
    assert got[1] == [TAGS[3]] * 3  # 3 pieces: context at most 1
    # Capped at 2 windows (reach 21 pieces): the words past it are O, and say so in `reads`.
    capped = TextPipeline(pre, 16, long_texts="windows", max_windows=2)
    reads = word_reads(capped, aligned)
    assert (reads[:30] >= 0).tolist() == (starts < 21).tolist()
    got = predict_tags(_ContextModel(), tagging_dataset(capped, aligned, 4), aligned.n_words, TAGS, reads)
    assert got[0][20:] == ["O"] * 10 and "O" not in got[0][:20]


def test_ner_takes_windows_and_still_refuses_head_tail():
    NerTask().check_config(RunConfig(task="ner", long_texts="windows"))
    with pytest.raises(ConfigError, match="--long-texts head-tail: --task ner tags every word"):
        NerTask().check_config(RunConfig(task="ner", long_texts="head-tail"))


# --------------------------------------------------------------------------- the export


def test_exported_windows_tag_every_word_of_a_long_sentence(pre, tiny_pair, tmp_path):
    """300 one-piece words at --max-seq-length 32 (windows of 30 by 15: 19 of them). The probe core tags a position
    B-loc only with >= 7 pieces of context on both sides: read from its best window every word has that, except the
    first and last 7 of the text. Asked in a fresh process with only tensorflow and tensorflow_text."""
    from tfbert.export.publish import verify_in_fresh_process
    from tfbert.export.tagger import TaggerServer, export_tagger

    words = [WORDS[i % 3] for i in range(300)]
    text = " ".join(words)
    spans = np.cumsum([0] + [len(w) + 1 for w in words[:-1]]).tolist()  # each word's first character
    version = export_tagger(_TagByContext(), str(tiny_pair / "preprocess"), TAGS, tmp_path / "ner",
                            inputs=InputSettings(32, "windows"), log=lambda *_: None)
    meta = json.loads((version / "assets.extra" / "tfbert.json").read_text())
    assert meta["long_texts"] == "windows"
    assert meta["windows"] == {"size": 30, "stride": 15, "max_windows": MAX_WINDOWS, "reach": 30 + 127 * 15,
                               "pooling": "best-context"}
    out = verify_in_fresh_process(version, {"serving_default": {"text": ["zebra", text, ""]}})["serving_default"]
    assert out["num_entities"] == [1, 300, 0]  # every word of the long text: each one its own B- entity
    types = out["entity_type"][1]
    assert types == ["person"] * 7 + ["loc"] * 286 + ["person"] * 7
    assert [(s, e) for s, e in zip(out["entity_start"][1], out["entity_end"][1])] == \
        [(s, s + len(w)) for s, w in zip(spans, words)]
    assert [text[s:e] for s, e in zip(out["entity_start"][1], out["entity_end"][1])] == out["entity_text"][1] == words
    # Truncate (the same serving module): the first 30 words only; the tail gets no entity.
    (tmp_path / "tags.txt").write_text("\n".join(TAGS))
    server = TaggerServer(str(tiny_pair / "preprocess"), _TagByContext(), TAGS, InputSettings(32), tmp_path / "tags.txt")
    cut = server.serve(tf.constant([text]))
    assert cut["num_entities"].numpy().tolist() == [30]
    assert cut["entity_end"].numpy()[0].max() == spans[29] + len(words[29])
    assert [t.decode() for t in cut["entity_type"].numpy()[0]] == ["person"] * 7 + ["loc"] * 16 + ["person"] * 7


def test_training_ner_with_windows_plans_every_window_and_records_them(tiny_pair, tmp_path):
    """tfbert.fit --task ner --long-texts windows: steps planned from the windows, every test word tagged (the
    test split's sentences are longer than the window), the windows in the data notes and the export."""
    from pathlib import Path

    from tfbert.fit import fit
    from tfbert.train import parse_config
    rng = np.random.default_rng(0)
    files, lengths = {}, {}
    for split, n in (("train", 16), ("valid", 4), ("test", 4)):
        lines, lengths[split] = [], rng.integers(5, 40, n)  # one wordpiece a word
        for length in lengths[split]:
            words = [WORDS[i] for i in rng.integers(0, 3, int(length))]
            lines.append("".join(f"{w}\t{'B-loc' if w == 'zebra' else 'O'}\n" for w in words))
        files[split] = tmp_path / f"{split}.conll"
        files[split].write_text("\n".join(lines), encoding="utf-8")
    summary = fit(parse_config([
        "--verbose", "0", "--task", "ner", "--train-file", str(files["train"]), "--valid-file", str(files["valid"]),
        "--test-file", str(files["test"]), "--encoder", str(tiny_pair), "--batch-size", "8", "--epochs", "1",
        "--min-steps", "0", "--max-seq-length", "16", "--long-texts", "windows", "--window-stride", "5",
        "--max-windows", "6", "--output-dir", str(tmp_path / "out")]), log=lambda *_: None)
    windows = np.minimum(6, 1 + -(-np.maximum(lengths["train"] - 14, 0) // 5))
    assert summary["planned_steps_per_epoch"] == -(-windows.sum() // 8) > 2  # more than the 2 batches of sentences
    settings = {"size": 14, "stride": 5, "max_windows": 6, "reach": 39, "pooling": "best-context"}
    assert summary["truncation"]["windows"] == settings and summary["truncation"]["long_texts"] == "windows"
    assert summary["test"]["tokens"] == lengths["test"].sum() and summary["test"]["sentences"] == 4
    meta = json.loads((Path(summary["export"]) / "assets.extra" / "tfbert.json").read_text())
    assert meta["long_texts"] == "windows" and meta["windows"] == settings
