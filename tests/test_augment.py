"""--augment (tfbert.data.augment): each operation does what it says, a new copy every epoch, the same copies for a
seed, training batches only (never validation, test or the export), the batch count unchanged."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfbert.config import ConfigError, make_config
from tfbert.data.augment import (
    Augmentation,
    SynonymTable,
    augmentation,
    cut_off,
    delete_words,
    mask_pieces,
    read_synonym_file,
    replace_synonyms,
    swap_words,
)
from tfbert.data.inputs import RunInputs
from tfbert.data.pipeline import TextPipeline, load_preprocess, steps_per_epoch

SEED = tf.constant([7, 11], tf.int64)


@pytest.fixture(scope="module")
def preprocess(tiny_pair):
    return load_preprocess(str(tiny_pair / "preprocess"))


def synthetic_words(rows=300, words=20):
    """[rows, words, (pieces)]: word j of row i is the pieces [1000 + 100 i + j] (+ a second piece when j is odd),
    so every word is distinct and recognisable."""
    return tf.ragged.constant([[[1000 + 100 * i + j] + ([5] if j % 2 else []) for j in range(words)]
                               for i in range(rows)], dtype=tf.int64, ragged_rank=2)


def as_lists(ragged):
    return ragged.to_list()


def test_delete_removes_about_the_share_keeps_order_and_a_word():
    words = synthetic_words()
    out = as_lists(delete_words(words, 0.2, SEED))
    kept = sum(len(r) for r in out) / (300 * 20)
    assert 0.77 < kept < 0.83
    for before, after in zip(as_lists(words), out):
        assert after == [w for w in before if w in after]  # a subsequence: words dropped whole, order kept
    assert all(len(r) == 1 for r in as_lists(delete_words(words, 0.999, SEED)))  # never an empty text


def test_swap_keeps_the_multiset_and_moves_about_the_share():
    words = synthetic_words()
    out = as_lists(swap_words(words, 0.2, SEED))
    moved = 0
    for before, after in zip(as_lists(words), out):
        assert sorted(before) == sorted(after)  # the same words, each with its own wordpieces
        moved += sum(a != b for a, b in zip(before, after))
    assert 0.15 < moved / (300 * 20) < 0.21  # picked words move unless a text picked only one


def test_cutoff_drops_one_span_of_the_stated_length():
    pieces = tf.ragged.constant([list(range(1, n + 1)) for n in (1, 2, 5, 10, 37)] * 20, dtype=tf.int64)
    for before, after in zip(as_lists(pieces), as_lists(cut_off(pieces, 0.25, SEED))):
        n, span = len(before), min(math.ceil(0.25 * len(before)), len(before) - 1)
        assert len(after) == n - span
        assert any(after == before[:s] + before[s + span:] for s in range(n - span + 1))


def test_mask_uses_the_preprocess_models_mask_id_on_about_the_share(preprocess, tmp_path):
    mask_id = int(preprocess.tokenize.get_special_tokens_dict()["mask_id"])
    config = make_config({"augment": "mask", "augment_strength": 0.3, "seed": 3})
    aug = augmentation(config, preprocess)
    assert (aug.ops, aug.mask_id, aug.seed) == (("mask",), mask_id, 3) and mask_id == 103  # BERT vocab's [MASK]
    pieces = tf.ragged.constant([list(range(2000, 2050))] * 100, dtype=tf.int64)
    out = mask_pieces(pieces, 0.3, SEED, mask_id).flat_values.numpy()
    assert set(out[out != pieces.flat_values.numpy()]) == {mask_id}
    assert 0.27 < np.mean(out == mask_id) < 0.33


SYNONYMS = "# a comment\n\ngood = great, fine\nMovie = film\n"


def test_synonyms_come_from_the_file(preprocess, tmp_path):
    path = tmp_path / "syn.txt"
    path.write_text(SYNONYMS, encoding="utf-8")
    table = SynonymTable(path, preprocess)
    ids = lambda w: preprocess.tokenize(tf.constant([w])).merge_dims(-2, -1)[0].numpy().tolist()  # noqa: E731
    good, movie, the = ids("good"), ids("movie"), ids("the")
    words = preprocess.tokenize(tf.constant(["the good Movie , good good the movie"] * 200))
    out = as_lists(replace_synonyms(words, 0.5, SEED, table))
    swapped = {tuple(v) for before, after in zip(as_lists(words), out) for w, v in zip(before, after) if w != v}
    assert swapped == {tuple(ids("great")), tuple(ids("fine")), tuple(ids("film"))}  # both of good's, uncased match
    replaced = [w != v for before, after in zip(as_lists(words), out) for w, v in zip(before, after)
                if w in (good, movie)]
    assert 0.45 < np.mean(replaced) < 0.55
    assert all(after[0] == the and after[6] == the for after in out)  # words without an entry are kept


@pytest.mark.parametrize("content, message", [
    ("good = great\nbad great\n", "line 2: expected `word = synonym"),
    ("good = great\n\nbad = awful,, poor\n", "line 3: expected"),
    ("good = great\nvery bad = awful\n", "line 2: 'very bad' is not a single word"),
    ("good = great\ngood = fine\n", r"line 2: 'good' was already given a line \(1\)"),
    ("# only a comment\n", "no entries"),
])
def test_a_bad_synonym_line_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "syn.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"syn.txt.*{message}"):
        read_synonym_file(path)


def test_synonyms_the_tokenizer_splits_or_does_not_know_are_refused(preprocess, tmp_path):
    for content, message in (("good = great\nbad = don't\n", "line 2: \"don't\" is 3 words"),
                             ("good = \U0001fae8\n", "line 1: .* is not in the encoder's vocabulary"),
                             ("good = great\nGOOD = fine\n", "line 2: 'GOOD' is the same word .* as 'good' on line 1")):
        path = tmp_path / "syn.txt"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            SynonymTable(path, preprocess)


@pytest.mark.parametrize("settings, message", [
    ({"augment": "delete,shuffle"}, "unknown operation 'shuffle'; choose from synonym, delete"),
    ({"augment": "delete,delete"}, "listed twice"),
    ({"augment": "delete", "augment_strength": 1.0}, "--augment-strength must be in"),
    ({"augment": "synonym"}, "--augment synonym needs --synonyms"),
    ({"augment": "delete", "synonyms": "s.txt"}, "--synonyms is read by --augment synonym only"),
    ({"augment": "mask", "long_texts": "windows"}, "--augment does not combine with --long-texts windows"),
])
def test_augment_settings_are_checked(settings, message):
    config = make_config({"epochs": 1, "learning_rate": 1e-4, "patience": 1, **settings})
    with pytest.raises(ConfigError, match=message):
        config.check()


def test_ner_refuses_augment():
    from tfbert.tasks import create
    with pytest.raises(ConfigError, match="--task ner does not augment"):
        make_config({"task": "ner", "augment": "delete"}).check_task(create("ner"))


# --------------------------------------------------------------------------- the pipeline


def epoch_by_row(ds) -> dict[int, tuple]:
    """One pass over (inputs, row index) batches -> {row: its packed word ids without padding}."""
    out = {}
    for x, rows in ds:
        for ids, mask, row in zip(x["input_word_ids"].numpy(), x["input_mask"].numpy(), rows.numpy()):
            out[int(row)] = tuple(ids[mask == 1])
    return out


def test_epochs_differ_a_seed_repeats_them_and_the_batch_count_holds(preprocess):
    from tfbert.data.tweets import load_tweets
    df = load_tweets()[0].iloc[:150].assign(label_id=np.arange(150))
    pipe = TextPipeline(preprocess, 64)
    mask_id = int(preprocess.tokenize.get_special_tokens_dict()["mask_id"])

    def two_epochs(seed):
        ds = pipe.dataset(df, 16, shuffle=True, seed=0,
                          augment=Augmentation(("delete", "swap", "cutoff", "mask"), 0.2, mask_id, seed))
        assert ds.cardinality().numpy() == steps_per_epoch(150, 16) == 10
        assert sum(1 for _ in ds) == 10
        return epoch_by_row(ds), epoch_by_row(ds)

    first, second = two_epochs(seed=0)
    plain = epoch_by_row(pipe.dataset(df, 16, shuffle=True, seed=0))
    assert sorted(first) == sorted(second) == list(range(150))  # every row once per epoch
    assert np.mean([first[r] != plain[r] for r in plain]) > 0.9  # augmented
    assert np.mean([first[r] != second[r] for r in first]) > 0.9  # a new copy each epoch
    assert two_epochs(seed=0) == (first, second)  # the same seed: the same epochs
    other_seed = two_epochs(seed=1)[0]
    assert np.mean([other_seed[r] != first[r] for r in first]) > 0.9
    with pytest.raises(ValueError, match="training batches only"):
        pipe.dataset(df, 16, augment=Augmentation(("mask",), 0.2, mask_id))


def test_multilabel_batches_are_augmented_and_keep_their_targets(preprocess):
    from tfbert.tasks.multilabel import multilabel_dataset
    texts = [f"tweet number {i} about paris and the olympic games" for i in range(40)]
    targets = np.eye(40, dtype=np.float32)  # row i's target marks it
    mask_id = int(preprocess.tokenize.get_special_tokens_dict()["mask_id"])
    pipe = TextPipeline(preprocess, 64)
    ds = multilabel_dataset(pipe, texts, targets, 8, shuffle=True, augment=Augmentation(("mask",), 0.3, mask_id))
    plain = multilabel_dataset(pipe, texts, targets, 8, shuffle=True)
    assert ds.cardinality().numpy() == plain.cardinality().numpy() == 5
    got = epoch_by_row(ds.map(lambda x, y: (x, tf.argmax(y, axis=1))))
    want = epoch_by_row(plain.map(lambda x, y: (x, tf.argmax(y, axis=1))))
    for row in range(40):  # each text keeps its own target and length
        assert len(got[row]) == len(want[row])
    # About the strength's share of its wordpieces ([CLS] and [SEP] aside) masked: 440 pieces at 0.3 give a share
    # within 0.3 +- 0.07 at three standard deviations, whatever the stream (a row of 11 pieces keeps all of them
    # with probability 0.7 ** 11 = 2 %, so "every row has a mask" would fail about half of the streams).
    masked = [sum(g == mask_id for g in got[row]) for row in range(40)]
    share = sum(masked) / sum(len(got[row]) - 2 for row in range(40))
    assert 0.2 < share < 0.4 and sum(m > 0 for m in masked) >= 34, (share, masked)


# --------------------------------------------------------------------------- through the task and the loop


@pytest.mark.parametrize("name", ["classify", "regression", "multilabel"])
def test_each_text_task_augments_its_training_batches_only(name, tiny_pair, preprocess, tmp_path):
    """Through the task's own datasets (its example data): validation batches identical with and without --augment,
    training batches changed, the planned steps and the batch count unchanged."""
    from tfbert.tasks import create
    task = create(name)
    files = task.example_data(tmp_path)
    runs = {}
    for augment in (None, "delete,swap,cutoff,mask"):
        config = make_config({**files, "task": name, "encoder": str(tiny_pair), "batch_size": 8, "augment": augment,
                              "augment_strength": 0.3}).with_task_defaults(task, log=lambda *_: None)
        data = task.load_data(config)
        ds = task.datasets(data, RunInputs.from_config(preprocess, config), config, log=lambda *_: None)
        runs[augment] = (ds.steps_per_epoch, ds.train.cardinality().numpy(), sum(1 for _ in ds.train),
                         [x["input_word_ids"].numpy() for x, _ in ds.valid],
                         [x["input_word_ids"].numpy() for x, _ in ds.train.take(3)])
    (steps, cardinality, count, valid, train), (*a_counts, a_valid, a_train) = runs.values()
    assert [steps, cardinality, count] == a_counts == [math.ceil(len(data.train) / 8)] * 3
    assert len(valid) == len(a_valid) and all(np.array_equal(v, w) for v, w in zip(valid, a_valid))
    assert not any(t.shape == u.shape and np.array_equal(t, u) for t, u in zip(train, a_train))


def test_sentence_pairs_augment_each_segment(preprocess):
    df = pd.DataFrame({"text": [f"first sentence number {i} is here" for i in range(24)],
                       "text_b": [f"and the second one {i} follows it" for i in range(24)], "label_id": range(24)})
    mask_id = int(preprocess.tokenize.get_special_tokens_dict()["mask_id"])
    pipe = TextPipeline(preprocess, 64, has_pairs=True)

    def segments(ds):  # row -> (segment a, segment b) wordpieces, [CLS]/[SEP] left out
        out = {}
        for x, rows in ds:
            ids, types, mask = (x[k].numpy() for k in ("input_word_ids", "input_type_ids", "input_mask"))
            for i, row in enumerate(rows.numpy()):
                out[int(row)] = (list(ids[i][(types[i] == 0) & (mask[i] == 1)][1:-1]), list(ids[i][types[i] == 1][:-1]))
        return out

    plain = segments(pipe.dataset(df, 8, shuffle=True))
    ds = pipe.dataset(df, 8, shuffle=True, augment=Augmentation(("delete", "mask"), 0.3, mask_id))
    assert ds.cardinality().numpy() == 3
    augmented = segments(ds)
    for side in (0, 1):
        assert all(len(augmented[r][side]) <= len(plain[r][side]) for r in range(24))
        assert sum(len(augmented[r][side]) < len(plain[r][side]) for r in range(24)) > 6  # words deleted
        assert sum(augmented[r][side].count(mask_id) for r in range(24)) > 6  # and wordpieces masked


def test_classification_trains_with_augment_and_the_export_does_not_see_it(tiny_pair, tweets_csv, tmp_path):
    """Through the public loop (fit): the exported model answers as the trained weights do on unaugmented input, the
    same on every call; the settings record --augment."""
    from tfbert.fit import fit
    from tfbert.tasks import create
    settings = {"task": "classify", "train_file": str(tweets_csv), "text_column": "tweet", "label_column": "mood",
                "encoder": str(tiny_pair), "batch_size": 16, "seed": 0, "augment": "delete,swap,cutoff,mask",
                "augment_strength": 0.2, "epochs": 2, "min_steps": 0, "max_train_examples": 96,
                "learning_rate": 1e-3, "output_dir": str(tmp_path), "model_name": "aug", "verbose": 0}
    summary = fit(make_config(settings), log=lambda *_: None)
    assert summary["epochs_run"] == 2 and summary["planned_steps_per_epoch"] == math.ceil(96 / 16)
    served = tf.saved_model.load(summary["export"]).signatures["serving_default"]
    task = create("classify")
    config = make_config(settings).with_task_defaults(task, log=lambda *_: None)
    data = task.load_data(config)
    texts = data.test["text"].astype(str).tolist()[:32]
    first, again = (served(text=tf.constant(texts))["probabilities"].numpy() for _ in range(2))
    np.testing.assert_array_equal(first, again)
    run = Path(summary["run_dir"])
    handles = json.loads((run / "run.json").read_text())["encoder_handles"]
    model = task.build_model(handles["encoder"], data, config)
    model.load_weights(str(run / "checkpoints" / "best")).expect_partial()
    pipe = TextPipeline(load_preprocess(handles["preprocess"]), config.max_seq_length)
    expected = tf.nn.softmax(model.predict(pipe.dataset(data.test.iloc[:32], 32), verbose=0))
    np.testing.assert_allclose(first, np.asarray(expected), atol=1e-3)
    assert json.loads((run / "config.json").read_text())["augment"] == "delete,swap,cutoff,mask"
