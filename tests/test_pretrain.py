"""Continued masked-LM pre-training (issue 15 part 4): masking in tf.data, the MLM head, the output pair."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfbert.run_folder import LOCK_FILE

WORDS = ("the cat sat on the mat while unbelievably antidisestablishmentarianism tokenizers wandered "
         "through extraordinarily complicated paragraphs of text").split()


@pytest.fixture(scope="module")
def preprocess(tiny_pair):
    import tensorflow_hub as hub
    return hub.load(str(tiny_pair / "preprocess"))


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(3, 30))) for _ in range(n)]


def _masked(preprocess, texts, seed, whole_word=False):
    """(original inputs, word index per position, masked inputs, labels, weights) as numpy, one batch."""
    from tfbert.data.masking import MaskedTexts, Masking, mask_batch, pad
    m = Masking.of(preprocess, whole_word=whole_word)
    data = MaskedTexts(texts, preprocess, m, max_seq_length=32)
    inputs, word_of = pad(data.ids, data.types, data.words, m)
    masked, labels, weights = mask_batch(inputs, word_of, m, tf.constant([seed, 0], tf.int64))
    return m, {k: v.numpy() for k, v in inputs.items()}, word_of.numpy(), {k: v.numpy() for k, v in masked.items()}, \
        labels.numpy(), weights.numpy()


def test_masking_statistics(preprocess):
    m, inputs, word_of, masked, labels, weights = _masked(preprocess, _texts(1200), seed=1)
    ids, new = inputs["input_word_ids"], masked["input_word_ids"]
    rows = np.repeat(np.arange(len(ids)), weights.shape[1]).reshape(weights.shape)
    chosen = np.zeros_like(ids, bool)
    chosen[rows[weights > 0], masked["masked_lm_positions"][weights > 0]] = True
    real = word_of >= 0  # wordpieces of the texts: not [CLS], [SEP] or padding
    assert not (chosen & ~real).any()
    assert set(np.unique(ids[chosen])).isdisjoint({m.cls_id, m.sep_id, m.pad_id})
    assert (inputs["input_mask"][chosen] == 1).all()
    # labels are the original ids at the predicted positions, in position order
    np.testing.assert_array_equal(labels[weights > 0], np.take_along_axis(ids, masked["masked_lm_positions"], 1)[weights > 0])
    assert (new[~chosen] == ids[~chosen]).all()  # only chosen positions change
    share = chosen.sum() / real.sum()
    assert 0.145 < share < 0.155, share
    n = chosen.sum()
    assert n > 4000  # a large sample: the tolerances below are 4 standard deviations or more
    to_mask = (new[chosen] == m.mask_id).mean()
    kept = (new[chosen] == ids[chosen]).mean()
    random = ((new[chosen] != m.mask_id) & (new[chosen] != ids[chosen])).mean()
    assert abs(to_mask - 0.8) < 0.025 and abs(kept - 0.1) < 0.02 and abs(random - 0.1) < 0.02, (to_mask, kept, random)
    assert len(np.unique(new[chosen][(new[chosen] != m.mask_id) & (new[chosen] != ids[chosen])])) > 100  # spread


def test_whole_word_masking_takes_every_piece_of_a_chosen_word(preprocess):
    m, inputs, word_of, masked, labels, weights = _masked(preprocess, _texts(600, seed=2), seed=3, whole_word=True)
    chosen = np.zeros_like(word_of, bool)
    for row, (positions, w) in enumerate(zip(masked["masked_lm_positions"], weights)):
        chosen[row, positions[w > 0]] = True
    assert chosen.any() and not (chosen & (word_of < 0)).any()
    multi = 0
    for row in range(len(word_of)):
        for word in np.unique(word_of[row][chosen[row]]):
            pieces = word_of[row] == word
            assert chosen[row][pieces].all(), (row, word)
            multi += pieces.sum() > 1
    assert multi > 50  # the sample does exercise words of several wordpieces
    share = chosen.sum() / (word_of >= 0).sum()
    assert 0.13 < share < 0.17, share  # about 15%: this sample has many words of 3 to 6 pieces (tweets: 14.7%)
    # the plain setting, same seed, splits words: a contrast showing the assertion above can fail
    _, _, word_of2, masked2, _, weights2 = _masked(preprocess, _texts(600, seed=2), seed=3)
    split = 0
    for row, (positions, w) in enumerate(zip(masked2["masked_lm_positions"], weights2)):
        words = word_of2[row][positions[w > 0]]
        split += sum((word_of2[row] == word).sum() > (words == word).sum() for word in np.unique(words))
    assert split > 0


def _epochs(data, n=2):
    """The masked batches of `n` passes over the training dataset, as model.fit iterates it once per epoch."""
    ds = data.training(8)
    return [[tuple(np.asarray(t).tolist() for t in (inputs["input_word_ids"], inputs["masked_lm_positions"]))
             for inputs, _, _ in ds] for _ in range(n)]


def test_masks_differ_by_epoch_and_repeat_for_a_seed(preprocess):
    from tfbert.data.masking import MaskedTexts, Masking
    m = Masking.of(preprocess)
    texts = ["the cat sat on the mat while tokenizers wandered through text"] * 24  # same text: order can't differ
    a, b, c = (_epochs(MaskedTexts(texts, preprocess, m, seed=s)) for s in (5, 5, 6))
    assert a == b and len(a[0]) == 3
    assert a[0] != a[1]
    assert a[0] != c[0]


def test_pair_labels_stay_with_their_sequences_through_tf_data(preprocess):
    """Each document repeats one word of its own in both sentences, so a "next" pair (label 0) shows one word on
    both sides and a "not next" pair (label 1) two; checked on shuffled, length-grouped, masked training batches."""
    from tfbert.data.masking import PAIR_KEYS, MaskedTexts, Masking
    words = [f"{a}{v}{b}" for a in "bcdfghjklmnp" for v in "aeiou" for b in "tgnpd"]  # 300, some split in pieces
    docs = [[f"{w} {w} {w}.", f"{w} {w}."] for w in words]
    m = Masking.of(preprocess, share=0.01)
    data = MaskedTexts(docs, preprocess, m, max_seq_length=24, seed=3, objective="nsp", packing="document")
    seen = {0: 0, 1: 0}
    for inputs, _, mlm_weights in data.training(8):
        ids, types = inputs["input_word_ids"].numpy(), inputs["input_type_ids"].numpy()
        rows = zip(ids, types, inputs[PAIR_KEYS[0]].numpy(), inputs[PAIR_KEYS[1]].numpy(), mlm_weights.numpy())
        for row, t, label, weight, predicted in rows:
            assert weight == float((t == 1).any())  # pairs, and only pairs, have a B side
            if not weight or predicted.any():  # a masked row may carry a random id: skipped
                continue
            special = np.isin(row, [m.cls_id, m.sep_id, m.pad_id])
            a, b = set(row[(t == 0) & ~special]), set(row[(t == 1) & ~special])
            assert (a == b) == (label == 0), (label, a, b)
            seen[int(label)] += 1
    assert min(seen.values()) > 80, seen


def test_read_texts(tmp_path):
    from tfbert.data.tables import DataError
    from tfbert.data.texts import read_texts
    p = tmp_path / "t.txt"
    p.write_bytes(b"first line\n\n  \nbad \xff byte\nlast")
    texts, notes = read_texts(p)
    assert texts == ["first line", "bad \ufffd byte", "last"]
    assert any("1 line(s) had invalid UTF-8" in n for n in notes) and any("2 blank" in n for n in notes)
    t = tmp_path / "t.csv"
    t.write_text('title,body\nA,one\nB,"two, with comma"\n')
    assert read_texts(t, "body")[0] == ["one", "two, with comma"]
    with pytest.raises(DataError, match="no column 'text'"):
        read_texts(t)
    with pytest.raises(DataError, match="needs a table"):
        read_texts(p, "body")


def test_documents_segments_and_the_objective_they_choose(tmp_path):
    from tfbert.data.tables import DataError
    from tfbert.data.texts import read_documents
    from tfbert.tasks.catalog import pair_objective
    p = tmp_path / "d.txt"
    p.write_text('One sentence. Two! "Three?" four e.g. five\nalone\n')
    docs, _ = read_documents(p)
    assert docs == [["One sentence.", "Two!", '"Three?"', "four e.g.", "five"], ["alone"]]
    t = tmp_path / "d.csv"
    t.write_text("doc,text\na,first\na,second\nb,third\na,fourth\nb,\n")
    docs, notes = read_documents(t, document_column="doc")
    assert docs == [["first", "second"], ["third"], ["fourth"]]  # consecutive rows; a blank row dropped
    assert any("3 documents" in n for n in notes)
    with pytest.raises(DataError, match="--document-column 'doc' needs a table"):
        read_documents(p, document_column="doc")
    with pytest.raises(DataError, match="no column 'chapter'"):
        read_documents(t, document_column="chapter")
    # auto: nsp when at least half the documents have a segment boundary
    assert pair_objective("auto", [["a", "b"], ["c"]])[0] == "nsp"
    assert pair_objective("auto", [["a", "b"], ["c"], ["d"]])[0] == "mlm"
    assert pair_objective("mlm,sop", [["c"]])[0] == "sop"
    assert pair_objective("auto", [["a", "b"], ["c"]], packing="full")[0] == "mlm"  # full packing holds no pairs


def test_hf_mlm_head_weights_are_loaded():
    from tfbert.encoders.bert import build_encoder
    from tfbert.encoders.checkpoint import BertConfig
    from tfbert.encoders.mlm import build_mlm_model, hf_head_weights, mlm_head, set_head_weights
    config = BertConfig(vocab_size=40, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16)
    rng = np.random.default_rng(0)
    w = {"cls.predictions.transform.dense.weight": rng.normal(size=(8, 8)).astype(np.float32),
         "cls.predictions.transform.dense.bias": rng.normal(size=8).astype(np.float32),
         "cls.predictions.transform.LayerNorm.weight": rng.normal(size=8).astype(np.float32),
         "cls.predictions.transform.LayerNorm.bias": rng.normal(size=8).astype(np.float32),
         "cls.predictions.bias": rng.normal(size=40).astype(np.float32)}
    assert hf_head_weights({}) is None
    model = build_mlm_model(build_encoder(config), config)
    head = mlm_head(model)
    set_head_weights(head, hf_head_weights(w), "test")
    np.testing.assert_array_equal(head.transform.kernel.numpy(), w["cls.predictions.transform.dense.weight"].T)
    np.testing.assert_array_equal(head.output_bias.numpy(), w["cls.predictions.bias"])
    np.testing.assert_array_equal(head.layer_norm.gamma.numpy(), w["cls.predictions.transform.LayerNorm.weight"])
    # the output layer is the word-embedding table: logits = transformed . table^T + bias
    inputs = {"input_word_ids": tf.constant([[1, 5, 7, 2]]), "input_mask": tf.ones([1, 4], tf.int32),
              "input_type_ids": tf.zeros([1, 4], tf.int32), "masked_lm_positions": tf.constant([[2]])}
    out = model(inputs)
    x = head.layer_norm(head.transform(out["sequence_output"][:, 2:3]))
    expected = tf.matmul(x, model.get_layer("bert_encoder").get_layer("word_embeddings").embeddings, transpose_b=True)
    np.testing.assert_allclose(out["mlm_logits"].numpy(), (expected + head.output_bias).numpy(), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_pair):
    """The tiny encoder pre-trained for a few steps on a tiny repeated corpus of two-sentence documents (so
    --objectives auto adds nsp): (version dir, metadata)."""
    from tfbert.pretrain import pretrain
    root = tmp_path_factory.mktemp("pretrain")
    lines = [f"the cat sat on the mat number {i % 5}. number {i % 5} ran home" for i in range(64)]
    (root / "train.txt").write_text("\n".join(lines))
    (root / "valid.txt").write_text("\n".join(lines[:16]))
    meta = pretrain(root / "train.txt", root / "out", encoder=str(tiny_pair), valid_file=str(root / "valid.txt"),
                    epochs=4, patience=4, batch_size=16, learning_rate=5e-3, max_seq_length=16, seed=0, verbose=0,
                    log=lambda *_: None)
    return Path(meta["export"]), meta


def test_pretraining_lowers_the_held_out_mlm_loss(pretrained, tiny_pair):
    out, meta = pretrained
    p = meta["pretraining"]
    held = p["held_out_masked_token"]
    assert held["after"]["loss"] < held["before"]["loss"] - 1.0, held
    assert held["after"]["accuracy"] > held["before"]["accuracy"] + 0.1, held
    history = pd.read_csv(out.parent / "runs" / out.name / "history.csv")  # the loop's run folder, as every task's
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] and len(history) == 4
    sequences = p["sequences"]["train"]
    assert p["objectives"] == ["mlm", "nsp"] and sequences["documents"] == 64 and sequences["pairs"] > 40
    assert p["steps"] == 4 * -(-sequences["sequences"] // 16) and p["base_encoder"] == str(tiny_pair)
    assert out.name == "1" and p["pair_head"].startswith("initialised")
    pair = p["held_out_pair"]
    assert pair["after"]["pairs"] == pair["before"]["pairs"] > 8 and 0 <= pair["after"]["accuracy"] <= 1
    assert "val_pair_accuracy" in history.columns
    assert p["masking"] == {"mask_share": 0.15, "whole_word_masking": False, "mask_token": 0.8, "random_token": 0.1,
                            "kept": 0.1}
    assert p["mlm_head"].startswith("initialised")
    saved = json.loads((out / "tfbert.json").read_text())
    assert saved["pretraining"]["held_out_masked_token"] == held and saved["config"]["num_layers"] == 2
    # The run's test figures are the written encoder's: its mlm sub-object, loaded back, scores the held-out texts
    # as the trained model did (validation masks, same batches).
    run = json.loads((out.parent / "runs" / out.name / "metrics.json").read_text())
    assert run["test"]["predictions"] == held["after"]["predictions"]
    assert run["test"]["accuracy"] == held["after"]["accuracy"]
    assert run["test"]["pair"] == pair["after"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE]  # no temp dir


def test_output_loads_with_hub_and_has_the_mlm_sub_object(pretrained):
    import tensorflow_hub as hub

    from tfbert.encoders.layer_names import encoder_layers
    out, meta = pretrained
    pre = hub.load(str(out / "preprocess"))
    inputs = pre(tf.constant(["the cat sat", "on the mat number 3"]))
    layer = hub.KerasLayer(str(out / "encoder"), trainable=True)
    assert layer(inputs)["pooled_output"].shape == (2, 32)
    # the head's variables live under `mlm` only: the encoder's own are the ones per-layer options map
    names = [v.name for v in layer.trainable_variables]
    assert not [n for n in names if "mlm" in n]
    assert encoder_layers(names).num_layers == 2
    loaded = hub.load(str(out / "encoder"))
    mlm = hub.KerasLayer(loaded.mlm, trainable=True)
    result = mlm({**inputs, "masked_lm_positions": tf.constant([[1, 2, 3], [2, 4, 1]])})
    assert result["mlm_logits"].shape == (2, 3, 30522)
    assert result["sequence_output"].shape[:2] == inputs["input_word_ids"].shape
    assert [v for v in mlm.trainable_variables if "mlm_transform" in v.name]
    assert result["next_sentence_logits"].shape == (2, 2)
    # the pair objective trained the pooler (frozen when masked LM alone): it differs from the base encoder's
    base = {v.name: v.numpy() for v in hub.load(str(Path(meta["pretraining"]["base_encoder_dir"]) / "encoder")).variables}
    pooler = [v for v in loaded.variables if "pooler_transform/kernel" in v.name]
    assert len(pooler) == 1 and not np.allclose(pooler[0].numpy(), base[pooler[0].name])
    # the saved head and encoder are the trained ones: the held-out figures recomputed through the loaded `mlm`
    # (same texts, seed and batch size, so the same masks) are the recorded "after" figures
    from tfbert.data.masking import MaskedTexts, Masking
    from tfbert.data.texts import sentences
    from tfbert.tasks.mlm import evaluate
    valid = [sentences(t) for t in (out.parent.parent / "valid.txt").read_text().splitlines()]
    again = evaluate(mlm, MaskedTexts(valid, pre, Masking.of(pre), max_seq_length=16, seed=1, objective="nsp",
                                      packing="document").fixed(16))
    after = meta["pretraining"]["held_out_masked_token"]["after"]
    assert again["predictions"] == after["predictions"] and again["accuracy"] == after["accuracy"]
    assert again["pair"] == meta["pretraining"]["held_out_pair"]["after"]
    assert again["loss"] == pytest.approx(after["loss"], rel=1e-4)


def test_continued_pretraining_starts_from_the_outputs_head(pretrained):
    from tfbert.tasks.mlm import load_base
    out, _ = pretrained
    _, meta, _, encoder, heads, source = load_base(str(out), log=lambda *_: None)
    head = heads["mlm"]
    assert "mlm sub-object" in source and meta["weights"] == "continued pre-training"
    import tensorflow_hub as hub
    saved = {v.name: v.numpy() for v in hub.load(str(out / "encoder")).mlm.variables}
    np.testing.assert_array_equal(head["output_bias"], saved["mlm_head/mlm_output_bias:0"])
    np.testing.assert_array_equal(heads["pair"]["kernel"], saved["next_sentence/kernel:0"])
    np.testing.assert_array_equal(encoder.get_layer("word_embeddings").embeddings.numpy(),
                                  saved["word_embeddings/embeddings:0"])


def test_train_fine_tunes_a_classifier_on_the_output(pretrained, tmp_path):
    from tfbert.fit import fit
    from tfbert.train import parse_config
    out, _ = pretrained
    out = out.parent  # a base of versions: fine-tuning takes its latest
    rows = ["text,label"] + [f"the cat sat on the mat {i},pos" for i in range(12)] + \
        [f"number {i} on the mat,neg" for i in range(12)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    config = parse_config(["--verbose", "0", "--task", "classify", "--train-file", str(tmp_path / "d.csv"),
                           "--encoder", str(out), "--batch-size", "8", "--epochs", "1", "--min-steps", "3",
                           "--max-seq-length", "16", "--output-dir", str(tmp_path / "runs"), "--model-name", "c"])
    summary = fit(config, log=lambda *_: None)
    assert (tmp_path / "runs" / "c").is_dir() and summary["export"]
    assert summary["test"] and summary["task"] == "classify"


def test_cli_errors_are_one_line(tmp_path, capsys):
    from tfbert.pretrain import main
    assert main(["--train-file", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "o")]) == 2
    assert "missing.txt: file not found" in capsys.readouterr().err
    assert main(["--train-file", "x.txt", "--output", str(tmp_path / "o"), "--mask-share", "1.5"]) == 2
    assert "--mask-share 1.5" in capsys.readouterr().err
    assert main(["--train-file", "x.txt", "--output", str(tmp_path / "o"), "--objectives", "mlm,nsp",
                 "--packing", "full"]) == 2
    assert "--packing full with --objectives mlm,nsp: a pair is cut from one document" in capsys.readouterr().err


def test_cli_resumes_after_sigkill_and_takes_strategy_and_config(tmp_path, tiny_pair):
    """Pre-training is a task of the one loop: killed in its second epoch, the same command resumes there (under
    --strategy mirrored) and publishes once; its run folder's config.json is a --config the command reads."""
    from tfbert.config import make_config
    from tfbert.pretrain import build_parser, settings_from_args
    (tmp_path / "texts.txt").write_text("\n".join(f"the cat sat on mat {i} while words wandered" for i in range(480)))
    cmd = [sys.executable, "-m", "tfbert.pretrain", "--train-file", str(tmp_path / "texts.txt"), "--encoder",
           str(tiny_pair), "--output", str(tmp_path / "adapted"), "--epochs", "3", "--batch-size", "4",
           "--max-seq-length", "16", "--strategy", "mirrored", "--verbose", "2"]
    history = tmp_path / "adapted" / "runs" / "in-progress" / "history.csv"
    epochs_logged = lambda: len(history.read_text().splitlines()) - 1 if history.is_file() else 0  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    started = time.time()
    while epochs_logged() < 1:  # epoch 1's backup is written before its history row
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.time() - started < 300, "timed out"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert epochs_logged() == 1 and not (tmp_path / "adapted" / "1").exists()  # killed inside epoch 2

    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming the interrupted run" in again.stdout
    assert "Epoch 2/3" in again.stdout and "Epoch 1/3" not in again.stdout  # restarted at epoch 2, not 1
    run = tmp_path / "adapted" / "runs" / "1"
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "adapted").iterdir() if not p.name.startswith(".")) == ["1", "runs"]
    assert json.loads((tmp_path / "adapted" / "1" / "tfbert.json").read_text())["weights"] == "continued pre-training"

    settings = settings_from_args(build_parser().parse_args(["--config", str(run / "config.json"), "--epochs", "5"]))
    saved = json.loads((run / "config.json").read_text())
    assert settings == {**saved, "epochs": 5} and saved["strategy"] == "mirrored" and saved["task"] == "mlm"
    assert make_config(settings).mask_share == 0.15


@pytest.mark.slow
def test_the_nsp_head_learns_above_chance_on_real_tweets(tmp_path, tiny_pair):
    """8,000 built-in tweets as documents (69% have two or more sentences): two epochs of mlm,nsp on the tiny
    encoder lift the held-out next-sentence accuracy well above chance (0.485 -> 0.635 in a three-epoch trial)."""
    from tfbert.data.tweets import load_tweets
    from tfbert.pretrain import pretrain
    tweets, _ = load_tweets()
    texts = tweets["text"].str.replace(r"\s+", " ", regex=True).head(8000)
    (tmp_path / "tweets.txt").write_text("\n".join(texts))
    meta = pretrain(tmp_path / "tweets.txt", tmp_path / "out", encoder=str(tiny_pair), epochs=2, patience=2,
                    batch_size=32, learning_rate=3e-3, max_seq_length=32, max_valid=800, seed=0, verbose=0,
                    log=lambda *_: None)
    p = meta["pretraining"]
    assert p["objectives"] == ["mlm", "nsp"]  # auto: most tweets have several sentences
    pair = p["held_out_pair"]
    assert pair["after"]["pairs"] > 400
    # chance is 0.5 +- 0.02 (one standard deviation) on this many pairs
    assert pair["after"]["accuracy"] > 0.57 and pair["after"]["accuracy"] > pair["before"]["accuracy"] + 0.05, pair
