"""The default encoder's tokenizer against Hugging Face's on every built-in text and 12,000 Unicode fuzz strings.

Reference ids: tools/make_corpus_parity.py (tokenizers from the checkpoint's tokenizer.json, what AutoTokenizer gives),
stored in tests/data/corpus_parity_minilm.npz with the fuzz spec; the texts are regenerated here.
"""
import importlib.util
import random
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the text ops of the preprocess SavedModel)

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_corpus_parity", ROOT / "tools" / "make_corpus_parity.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)
REF = np.load(Path(__file__).parent / "data" / "corpus_parity_minilm.npz")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pre(minilm_pair):
    return hub.load(str(minilm_pair / "preprocess"))


@pytest.fixture(scope="module")
def texts():
    return tool.reference_texts(REF)  # checks they are the texts the reference was made from


@pytest.fixture(scope="module")
def vocab(minilm_pair):
    return (minilm_pair / "preprocess" / "assets" / "vocab.txt").read_text(encoding="utf-8").split("\n")


def _mismatches(pre, texts, expected, vocab):
    got = tool.tokenize_all(pre, texts)
    bad = [i for i, (a, b) in enumerate(zip(got, expected)) if not np.array_equal(a, b)]
    show = "\n".join(f"{texts[i]!r}\n  here {[vocab[t] for t in got[i]]}\n  hf   {[vocab[t] for t in expected[i]]}"
                     for i in bad[:5])
    return bad, show


def _assert_same(a, b):
    """Two ragged tensors are equal (compared as arrays: to_list() takes seconds on thousands of strings)."""
    for x, y in zip([a.flat_values, *a.nested_row_splits], [b.flat_values, *b.nested_row_splits]):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def _expected(name):
    sizes = dict(zip(REF["sets"].tolist(), REF["set_sizes"].tolist()))
    start = sum(sizes[n] for n in tool.SETS[:tool.SETS.index(name)])
    return tool.reference_ids(REF)[start:start + sizes[name]]


@pytest.mark.parametrize("name", ["tweets", "ner"])
def test_every_corpus_text_has_the_hugging_face_ids(pre, texts, vocab, name):
    assert len(texts[name]) > 2000
    bad, show = _mismatches(pre, texts[name], _expected(name), vocab)
    assert not bad, f"{len(bad)} of {len(texts[name])} {name} texts differ from Hugging Face, e.g.\n{show}"


def test_fuzz_strings_have_the_hugging_face_ids_except_where_tokenizers_unicode_tables_differ(pre, texts, vocab):
    """A fuzz string may differ only if it holds one of the code points whose Unicode data the tokenizers library
    has from other Unicode versions than Python's (docs/pages/guides/encoders.md): about 1 in 6 do, since they are drawn from
    every general category, where these characters (new since Unicode 9) are frequent."""
    if str(REF["unidata_version"]) != unicodedata.unidata_version:
        pytest.skip(f"the reference's exceptions are for Unicode {REF['unidata_version']} (Python's unicodedata, which "
                    f"the tokenizer's table is built from); this Python has {unicodedata.unidata_version}")
    fuzz = texts["fuzz"]
    assert len(fuzz) >= 10_000
    assert {k for k in REF.files if k.startswith("pool_cat_")} >= {f"pool_cat_{c}" for c in ("Cc", "Cf", "Co", "Cn",
                                                                                            "Mn", "Zs", "Lo", "So")}
    bad, _ = _mismatches(pre, fuzz, _expected("fuzz"), vocab)
    exceptions = tool.exception_code_points(REF)
    unexplained = [i for i in bad if not tool.holds_exception(fuzz[i], exceptions)]
    show = "\n".join(repr(fuzz[i]) for i in unexplained[:5])
    assert not unexplained, f"{len(unexplained)} of {len(fuzz)} fuzz strings differ from Hugging Face, e.g.\n{show}"
    assert len(bad) < 0.2 * len(fuzz)


def test_tokenize_with_offsets_agrees_with_tokenize_on_the_fuzz_set(pre, texts):
    """Same ids; offsets increasing, non-empty, inside the string and on character boundaries."""
    raw = [t.encode("utf-8") for t in texts["fuzz"]]
    ids, starts, limits = pre.tokenize_with_offsets(tf.constant(raw))
    plain = pre.tokenize(tf.constant(raw))
    _assert_same(ids, plain)
    st, li = starts.merge_dims(-2, -1), limits.merge_dims(-2, -1)
    row = st.value_rowids().numpy()
    st, li = st.flat_values.numpy(), li.flat_values.numpy()
    base = np.cumsum([0] + [len(r) for r in raw])[row]  # offsets into the joined bytes
    joined = np.frombuffer(b"".join(raw) + b"\0", np.uint8)
    lengths = np.array([len(r) for r in raw])[row]
    assert np.all(st < li) and np.all(st >= 0) and np.all(li <= lengths)
    assert np.all((np.diff(st) >= 0) | (np.diff(row) != 0))
    continuation = (joined & 0xC0) == 0x80
    assert not continuation[base + st].any() and not continuation[base + li].any()


def test_raw_invalid_utf8_tokenizes_as_its_python_decoding(pre):
    """Serving gets bytes: invalid UTF-8 is tokenized as Python's errors="replace" decoding, whose U+FFFD Hugging
    Face drops (however many there are)."""
    rng = random.Random(0)
    pieces = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80\x80", b"\xf8\x88\x80\x80\x80",
              "é".encode(), "😀".encode(), b"ab", b" ", b"[SEP]", b"[SE", b"\xe2\x80\x8b"]
    raw = [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12))) for _ in range(500)]
    decoded = [r.decode("utf-8", errors="replace").encode("utf-8") for r in raw]
    _assert_same(pre.tokenize(tf.constant(raw)), pre.tokenize(tf.constant(decoded)))
