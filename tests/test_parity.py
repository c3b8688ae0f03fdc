"""The converted default encoder against Hugging Face (values stored by tools/make_parity_reference.py)."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the text ops of the preprocess SavedModel)

REF = np.load(Path(__file__).parent / "data" / "parity_minilm.npz")
SENTENCES = [str(s) for s in REF["sentences"]]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(minilm_pair):
    return hub.load(str(minilm_pair / "preprocess")), hub.load(str(minilm_pair / "encoder"))


def _ids(pre, segments):
    packed = pre.bert_pack_inputs([pre.tokenize(tf.constant([s])) for s in segments], seq_length=512)
    n = int(packed["input_mask"].numpy().sum())
    return packed["input_word_ids"].numpy()[0, :n], packed["input_type_ids"].numpy()[0, :n]


def test_token_ids_equal_hugging_face(pair):
    pre, _ = pair
    assert len(SENTENCES) >= 15
    for i, s in enumerate(SENTENCES):
        np.testing.assert_array_equal(_ids(pre, [s])[0], REF[f"ids_{i}"], err_msg=repr(s))


def test_pair_ids_equal_hugging_face(pair):
    pre, _ = pair
    for j, (a, b) in enumerate(zip(REF["pair_a"], REF["pair_b"])):
        ids, types = _ids(pre, [str(a), str(b)])
        np.testing.assert_array_equal(ids, REF[f"pair_ids_{j}"])
        np.testing.assert_array_equal(types, REF[f"pair_type_ids_{j}"])


def test_sequence_output_matches_hugging_face_unpadded_and_padded(pair):
    pre, enc = pair
    worst = 0.0
    for i, s in enumerate(SENTENCES):  # unpadded: each sentence at its own length
        n = len(REF[f"ids_{i}"])
        out = enc(pre.bert_pack_inputs([pre.tokenize(tf.constant([s]))], seq_length=n), training=False)
        worst = max(worst, np.abs(out["sequence_output"].numpy()[0] - REF[f"seq_{i}"]).max())
        assert np.abs(out["pooled_output"].numpy()[0] - REF[f"pooled_{i}"]).max() < 1e-4
    assert worst < 1e-4
    out = enc(pre(tf.constant(SENTENCES)), training=False)["sequence_output"].numpy()  # padded to 128 together
    for i in range(len(SENTENCES)):
        n = len(REF[f"ids_{i}"])
        assert np.abs(out[i, :n] - REF[f"seq_{i}"]).max() < 1e-4, SENTENCES[i]
