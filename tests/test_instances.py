"""Pre-training sequences (issue 31): packing, and NSP / SOP pairs, on synthetic documents whose ids say where each
wordpiece comes from (id = 10000 + 100 * document + segment, so a sequence can be traced back)."""
import numpy as np
import pytest

from tfbert.data.instances import Segment, pair_sequences, single_sequences

CLS, SEP = 1, 2


def _documents(n, seed=0, max_segments=6, max_len=9, first=0):
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(first, first + n):
        segs = []
        for s in range(int(rng.integers(1, max_segments + 1))):
            k = int(rng.integers(1, max_len + 1))
            words = np.sort(rng.integers(0, k, k)).astype(np.int32)  # several pieces may share a word
            segs.append(Segment(np.full(k, 10000 + 100 * d + s, np.int32), words - words.min()))
        docs.append(segs)
    return docs


def _rows(built):
    """-> list of (ids, types, words, label, weight) per sequence."""
    ends = np.cumsum(built.lengths)
    starts = ends - built.lengths
    return [(built.ids[a:b], built.types[a:b], built.words[a:b], built.labels[i], built.weights[i])
            for i, (a, b) in enumerate(zip(starts, ends))]


def _origin(ids):
    """(document, segment) of each wordpiece id (specials dropped)."""
    real = ids[ids >= 10000] - 10000
    return real // 100, real % 100


def _check_framing(rows, max_len):
    for ids, types, words, _, _ in rows:
        assert len(ids) <= max_len and ids[0] == CLS and ids[-1] == SEP
        special = (ids == CLS) | (ids == SEP)
        assert (words[special] == -1).all() and (words[~special] >= 0).all()
        # word indices never decrease along a sequence: segments of different words never share an index
        assert (np.diff(words[~special]) >= 0).all()


@pytest.mark.parametrize("packing", ["document", "full"])
def test_packing_keeps_every_piece_in_order_and_crosses_documents_only_when_full(packing):
    docs = _documents(300, seed=1, max_segments=2, max_len=5) + _documents(20, seed=6, max_segments=8, max_len=9, first=300)
    max_len = 24  # the long documents (up to 72 pieces) need several sequences
    built = single_sequences(docs, max_len, packing, CLS, SEP)
    rows = _rows(built)
    _check_framing(rows, max_len)
    assert (built.weights == 0).all() and (built.types == 0).all()
    # Every wordpiece of every document, once, in document order: nothing is cut.
    all_ids = np.concatenate([ids[ids >= 10000] for ids, *_ in rows])
    np.testing.assert_array_equal(all_ids, np.concatenate([s.ids for d in docs for s in d]))
    assert built.stats["wordpieces_cut"] == 0
    crossing = 0
    for ids, *_ in rows:
        doc, _ = _origin(ids)
        changes = np.flatnonzero(np.diff(doc)) + 1
        crossing += len(changes) > 0
        # wherever the document changes inside a sequence, a [SEP] stands between the two
        positions = np.flatnonzero(ids >= 10000)
        for c in changes:
            assert ids[positions[c] - 1] == SEP
    if packing == "document":
        assert crossing == 0
        assert len(rows) > len(docs)
    else:  # short texts share sequences
        assert crossing > 0.5 * len(rows)
        assert len(rows) < 0.4 * len(docs)


def test_no_packing_is_one_document_per_sequence_cut_to_the_window():
    docs = _documents(50, seed=2)
    built = single_sequences(docs, 16, "none", CLS, SEP)
    rows = _rows(built)
    assert len(rows) == len(docs)
    for (ids, *_), doc in zip(rows, docs):
        expected = np.concatenate([s.ids for s in doc])[:14]
        np.testing.assert_array_equal(ids[1:-1], expected)
    total = sum(len(s) for d in docs for s in d)
    assert built.stats["wordpieces_cut"] == total - sum(len(r[0]) - 2 for r in rows) > 0


def test_nsp_pairs_are_an_even_coin_next_within_a_document_random_from_another():
    docs = _documents(3000, seed=3)
    max_len = 40
    built = pair_sequences(docs, max_len, "nsp", CLS, SEP, np.random.default_rng(0))
    rows = _rows(built)
    _check_framing(rows, max_len)
    pairs = [r for r in rows if r[4] == 1.0]
    assert built.stats["pairs"] == len(pairs) > 1500
    share = np.mean([r[3] for r in pairs])
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(pairs)), share  # a fair coin, 4 standard deviations
    for ids, types, _, label, _ in pairs:
        a, b = ids[types == 0], ids[types == 1]
        assert (a[0], a[-1], b[-1]) == (CLS, SEP, SEP) and (ids[:len(a)] == a).all()  # [CLS] A [SEP] B [SEP]
        (doc_a, seg_a), (doc_b, seg_b) = _origin(a), _origin(b)
        assert len(set(doc_a)) == 1 and len(set(doc_b)) == 1 and len(seg_a) and len(seg_b)
        assert (np.diff(seg_a) >= 0).all() and (np.diff(seg_b) >= 0).all()
        if label == 0:  # the true continuation: B's first segment is A's last + 1, in A's document
            assert doc_b[0] == doc_a[0] and seg_b[0] == seg_a[-1] + 1
        else:
            assert doc_b[0] != doc_a[0]
    # the sequences without a pair label are the parts of one segment: masked LM only, type 0
    for ids, types, _, label, weight in rows:
        if weight == 0:
            assert (types == 0).all() and label == 0 and len(set(_origin(ids)[1])) == 1


def test_sop_pairs_are_one_document_in_order_or_swapped():
    docs = _documents(2000, seed=4)
    built = pair_sequences(docs, 40, "sop", CLS, SEP, np.random.default_rng(1))
    pairs = [r for r in _rows(built) if r[4] == 1.0]
    share = np.mean([r[3] for r in pairs])
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(pairs)), share
    for ids, types, _, label, _ in pairs:
        (doc_a, seg_a), (doc_b, seg_b) = _origin(ids[types == 0]), _origin(ids[types == 1])
        assert len(set(doc_a) | set(doc_b)) == 1  # never another document
        if label == 0:
            assert seg_b[0] == seg_a[-1] + 1
        else:
            assert seg_a[0] == seg_b[-1] + 1  # B came first in the document


def test_pairs_repeat_for_a_seed():
    docs = _documents(200, seed=5)
    a, b, c = (pair_sequences(docs, 32, "nsp", CLS, SEP, np.random.default_rng(s)) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert len(a.ids) != len(c.ids) or (a.ids != c.ids).any()
