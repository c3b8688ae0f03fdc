"""Windows over long wordpiece sequences (tfbert/data/windows.py): every wordpiece is in some window, windows are
consecutive slices of their own text with the stated overlap, the cap holds, and pooling maps windows back to texts."""
import numpy as np
import pytest
import tensorflow as tf

from tfbert.data.windows import cut_windows, pool_windows, window_count


def _ragged(lengths):
    rows = [list(range(100 * i, 100 * i + n)) for i, n in enumerate(lengths)]
    return tf.ragged.constant(rows, dtype=tf.int64, ragged_rank=1, inner_shape=()), rows


@pytest.mark.parametrize("size,step", [(4, 2), (5, 5), (6, 1), (8, 3)])
def test_windows_cover_every_wordpiece_as_slices_of_their_text(size, step):
    lengths = [0, 1, size - 1, size, size + 1, 3 * size + 2, 17]
    ids, rows = _ragged(lengths)
    windows, item, start = cut_windows(ids, size, step)
    windows, item, start = windows.to_list(), item.numpy(), start.numpy()
    assert list(item) == sorted(item)  # in row order
    for i, row in enumerate(rows):
        mine = [(w, s) for w, it, s in zip(windows, item, start) if it == i]
        assert len(mine) == window_count([len(row)], size, step).numpy()[0]
        covered = set()
        for k, (w, s) in enumerate(mine):
            assert w == row[s:s + len(w)]  # a consecutive slice that starts where `start` says
            assert len(w) == min(size, len(row))  # never short unless the text is
            if k:
                assert 0 < s - mine[k - 1][1] <= step  # advances by step at most (the last is pulled back)
            covered |= set(w)
        assert covered == set(row)
        if len(row) <= size:
            assert len(mine) == 1


def test_window_cap_keeps_the_first_windows():
    ids, rows = _ragged([50, 3])
    windows, item, start = cut_windows(ids, 10, 5, max_windows=2)
    assert item.numpy().tolist() == [0, 0, 1]
    assert start.numpy().tolist() == [0, 5, 0]
    assert windows.to_list()[:2] == [rows[0][:10], rows[0][5:15]]


def test_bad_window_settings_are_refused():
    with pytest.raises(ValueError, match="step"):
        window_count([3], 4, 5)
    with pytest.raises(ValueError, match="mean, max, attention, not .median."):
        pool_windows(tf.zeros([2, 1]), tf.constant([0, 0]), 1, "median")


def test_pooling_maps_windows_back_to_texts():
    values = tf.constant([[1.0, 4.0], [3.0, 0.0], [5.0, 5.0]])
    item = tf.constant([0, 0, 1], tf.int64)
    np.testing.assert_allclose(pool_windows(values, item, 2, "mean").numpy(), [[2, 2], [5, 5]])
    np.testing.assert_allclose(pool_windows(values, item, 2, "max").numpy(), [[3, 4], [5, 5]])


def test_windows_run_in_a_traced_graph():
    fn = tf.function(lambda ids: cut_windows(ids, 4, 2, 3)[0].to_tensor(),
                     input_signature=[tf.RaggedTensorSpec([None, None], tf.int64)])
    ids, _ = _ragged([9, 2])
    assert fn(ids).shape == (4, 4)
