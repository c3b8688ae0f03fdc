"""tf.data pipeline: per-batch padding, length grouping with a planned batch count, truncation of huge texts,
order of eval batches."""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras

from tfbert.data.pipeline import TextPipeline, steps_per_epoch


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


def _random_texts(n, seed=0):
    return [" ".join(["w"] * int(k)) for k in np.random.default_rng(seed).integers(1, 60, size=n)]


def test_training_batches_group_similar_lengths(preprocess):
    texts = _random_texts(512)
    pipe = TextPipeline(preprocess, max_seq_length=128)
    grouped = [x["input_word_ids"].shape for x, _ in pipe.dataset(_frame(texts), 32, shuffle=True, seed=1)]
    padded_cells = sum(b * t for b, t in grouped)
    random_cells = sum(x["input_word_ids"].shape[0] * x["input_word_ids"].shape[1]
                       for x, _ in pipe.dataset(_frame(list(np.random.default_rng(1).permutation(texts))), 32))
    assert len(grouped) == steps_per_epoch(512, 32) and sum(b for b, _ in grouped) == 512
    assert padded_cells < 0.6 * random_cells  # far less padding than random batches


# batch 2 makes megabatches of 100 rows: 203 rows are 3 megabatches, the last one of 3 rows.
@pytest.mark.parametrize("batch_size", [16, 2])
def test_planned_steps_are_the_steps_run(preprocess, batch_size):
    n = 203
    df = _frame(_random_texts(n), label_id=np.arange(n))  # label = row id, to follow every example
    pipe = TextPipeline(preprocess, max_seq_length=64)

    def epochs(seed, count=2):
        ds = pipe.dataset(df, batch_size, shuffle=True, seed=seed)
        return [[y.numpy() for _, y in ds] for _ in range(count)]

    first, second = epochs(seed=3)
    for epoch in (first, second):
        assert len(epoch) == steps_per_epoch(n, batch_size)
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(n))  # each example once
        assert sorted(len(b) for b in epoch)[1:] == [batch_size] * (len(epoch) - 1)  # one partial batch at most
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))  # reshuffled each epoch
    again = epochs(seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first + second, again[0] + again[1]))  # same seed, same batches
    assert not np.array_equal(np.concatenate(first), np.concatenate(epochs(seed=4, count=1)[0]))


def test_keras_fit_runs_the_planned_steps(preprocess):
    n, batch_size = 203, 16
    ds = TextPipeline(preprocess, max_seq_length=64).dataset(_frame(_random_texts(n)), batch_size, shuffle=True)
    ds = ds.map(lambda x, y: (x["input_mask"], y))
    mask = keras.Input(shape=(None,), dtype=tf.int32)
    length = keras.layers.Lambda(lambda m: tf.reduce_sum(tf.cast(m, tf.float32), -1, keepdims=True))(mask)
    model = keras.Model(mask, keras.layers.Dense(2)(length))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps = []
    count = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: steps.append(0),
                                           on_train_batch_end=lambda *_: steps.__setitem__(-1, steps[-1] + 1))
    model.fit(ds, epochs=2, verbose=0, callbacks=[count])  # no steps_per_epoch: Keras runs each epoch to the end
    assert steps == [steps_per_epoch(n, batch_size)] * 2


def test_pairs_are_packed_as_two_segments(preprocess):
    df = _frame(["one two", "three"], text_b=["four", "five six seven"])
    x, _ = next(iter(TextPipeline(preprocess, has_pairs=True).dataset(df, batch_size=2)))
    types, mask = x["input_type_ids"].numpy(), x["input_mask"].numpy()
    np.testing.assert_array_equal(types[0, :6], [0, 0, 0, 0, 1, 1])
    assert mask[1].sum() == 7 and x["input_word_ids"].shape[1] == 7
