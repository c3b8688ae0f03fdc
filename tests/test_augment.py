"""--augment (tfbert.data.augment): each operation does what it says, a new copy every epoch, the same copies for a
seed, training batches only (never validation, test or the export), the batch count unchanged."""
import math

import numpy as np
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
                             ("good = \U0001fae8\n", "line 1: .* is not in the encoder's vocabulary")):
        path = tmp_path / "syn.txt"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            SynonymTable(path, preprocess)


@pytest.mark.parametrize("settings, message", [
    ({"augment": "delete,shuffle"}, "unknown operation"),
    ({"augment": "delete,delete"}, "listed twice"),
    ({"augment": "delete", "augment_strength": 1.0}, "--augment-strength must be in"),
    ({"augment": "synonym"}, "--augment synonym needs --synonyms"),
    ({"augment": "delete", "synonyms": "s.txt"}, "--synonyms is read by --augment synonym only"),
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
