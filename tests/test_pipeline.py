"""tf.data pipeline: per-batch padding, length bucketing, truncation of huge texts, order of eval batches."""
import numpy as np
import pandas as pd
import pytest
import tensorflow_hub as hub

from tfbert.pipeline import TextPipeline


@pytest.fixture(scope="module")
def preprocess(tiny_pair):
    return hub.load(str(tiny_pair / "preprocess"))


def _frame(texts, **cols):
    return pd.DataFrame({"text": texts, "label_id": np.arange(len(texts)) % 2, **cols})


def test_eval_batches_keep_order_and_pad_to_their_own_longest(preprocess):
    texts = ["a", "a b c d e f g h", "a b", "word " * 30]
    batches = list(TextPipeline(preprocess, max_seq_length=16).dataset(_frame(texts), batch_size=2))
    first, second = batches[0][0]["input_word_ids"].numpy(), batches[1][0]["input_word_ids"].numpy()
    assert first.shape == (2, 10)  # 8 words + [CLS] + [SEP]
    assert second.shape == (2, 16)  # capped at max_seq_length
    labels = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(labels, [0, 1, 0, 1])


def test_a_megabyte_text_is_cut_to_max_seq_length(preprocess):
    huge = "lorem ipsum " * 90_000  # ~1 MB
    pipe = TextPipeline(preprocess, max_seq_length=32)
    (tokens,), _ = next(iter(pipe.tokenized(_frame([huge, "short"]))))
    assert tokens.shape[0] == 32
    x, _ = next(iter(pipe.dataset(_frame([huge, "short"]), batch_size=2)))
    assert x["input_word_ids"].shape == (2, 32) and x["input_mask"].numpy()[1].sum() == 3


def test_training_batches_are_bucketed_by_length(preprocess):
    rng = np.random.default_rng(0)
    texts = [" ".join(["w"] * int(n)) for n in rng.integers(1, 60, size=512)]
    pipe = TextPipeline(preprocess, max_seq_length=128)
    bucketed = [x["input_word_ids"].shape for x, _ in pipe.dataset(_frame(texts), 32, shuffle=True, seed=1)]
    padded_cells = sum(b * t for b, t in bucketed)
    random_cells = sum(x["input_word_ids"].shape[0] * x["input_word_ids"].shape[1]
                       for x, _ in pipe.dataset(_frame(list(rng.permutation(texts))), 32))
    assert sum(b for b, _ in bucketed) == 512
    assert padded_cells < 0.8 * random_cells  # far less padding than random batches


def test_pairs_are_packed_as_two_segments(preprocess):
    df = _frame(["one two", "three"], text_b=["four", "five six seven"])
    x, _ = next(iter(TextPipeline(preprocess, has_pairs=True).dataset(df, batch_size=2)))
    types, mask = x["input_type_ids"].numpy(), x["input_mask"].numpy()
    np.testing.assert_array_equal(types[0, :6], [0, 0, 0, 0, 1, 1])
    assert mask[1].sum() == 7 and x["input_word_ids"].shape[1] == 7
