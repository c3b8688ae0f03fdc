"""Sentence-embedding exports (`python -m tfbert.embed`): pooling, similarity, fine-tuned runs, parity with the
Hugging Face reference (slow)."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

REFERENCE = Path(__file__).parent / "data" / "embeddings_minilm.npz"


@pytest.fixture(scope="module")
def tiny_embedder(tiny_pair, tmp_path_factory):
    from tfbert.embed import export_embeddings
    return export_embeddings(tmp_path_factory.mktemp("emb") / "embedding", encoder=str(tiny_pair), max_seq_length=32,
                             log=lambda *_: None)


def manual_embedding(pair: Path, text: str, max_seq_length: int, checkpoint: str | None = None) -> np.ndarray:
    """The mean of the encoder's sequence_output over every position of one unpadded text, normalised: what the
    export must compute, written independently of it."""
    import tensorflow as tf
    import tensorflow_hub as hub

    from tfbert.data.pipeline import TextPipeline
    from tfbert.encoders.layer import encoder_layer, restore_encoder_weights

    pipe = TextPipeline(hub.load(str(pair / "preprocess")), max_seq_length, has_pairs=False)
    layer = encoder_layer(str(pair / "encoder"))
    if checkpoint:
        restore_encoder_weights(layer, checkpoint)
    seq = layer(pipe.encode(tf.constant([text])), training=False)["sequence_output"].numpy()[0]
    mean = seq.mean(0)
    return mean / np.linalg.norm(mean)


def test_embeddings_are_mean_pooled_unit_vectors_independent_of_batching(tiny_embedder, tiny_pair):
    from tfbert.serving import load

    model = load(tiny_embedder)
    texts = ["a short one", "a considerably longer sentence about the weather in the north of the country", "",
             "héllo 👍🏽 日本語"]
    together = model.embed(texts)
    assert together.shape == (4, 32) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Padding inside a batch must not leak into the mean: each text alone gives the same vector.
    alone = np.concatenate([model.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    for i in (0, 1):  # mean over real tokens, [CLS]/[SEP] included (not [CLS] alone, not the pooler)
        np.testing.assert_allclose(together[i], manual_embedding(tiny_pair, texts[i], 32), atol=1e-5)
    assert json.loads((Path(tiny_embedder) / "assets.extra" / "tfbert.json").read_text())["serving"] == "embedder"
    from tfbert.export.warmup import read_warmup_requests
    warm = {log.predict_log.request.model_spec.signature_name for log in read_warmup_requests(tiny_embedder)}
    assert warm == {"serving_default", "serving_similarity"}


def test_similarity_is_the_cosine_of_the_embeddings(tiny_embedder):
    from tfbert.serving import load

    model = load(tiny_embedder)
    a, b = ["the cat sat", "rain again today", "x"], ["a cat was sitting", "sunny and warm", "x"]
    sim = model.similarity(a, b)
    expected = (model.embed(a) * model.embed(b)).sum(1)
    np.testing.assert_allclose(sim, expected, atol=1e-5)
    assert abs(sim[2] - 1.0) < 1e-5  # identical texts
    with pytest.raises(ValueError, match="3 items but texts_b has 2"):
        model.similarity(a, b[:2])


def test_hostile_inputs_give_finite_unit_vectors(tiny_embedder):
    from tfbert.serving import load

    model = load(tiny_embedder)
    hostile = ["", "x" * 100_000, b"\xff\xfe broken \xc3(".decode("utf-8", "replace"), "\x00\x07", " " * 50]
    out = model.embed(hostile, batch_size=1000)
    assert out.shape == (5, 32) and np.isfinite(out).all()
    big = model.embed(["word"] * 1000, batch_size=1000)
    assert big.shape == (1000, 32) and np.isfinite(big).all() and np.ptp(big, axis=0).max() < 1e-5


def test_predict_and_evaluate_clis_read_the_export(tiny_embedder, tmp_path, capsys):
    from tfbert.evaluate import main as evaluate_main
    from tfbert.predict import main as predict_main
    from tfbert.serving import load

    assert predict_main(["--model", str(tiny_embedder), "good day", "--text-b", "nice day"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["text_b"] == "nice day" and -1 <= line["similarity"] <= 1
    assert predict_main(["--model", str(tiny_embedder), "good day"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip())["embedding"]) == 32

    a = ["the cat sat", "rain again", "stocks fell", "a cat sat", "dogs bark", "it is sunny"]
    b = ["a cat sat", "more rain", "markets dropped", "a cat sat down", "the bank closed", "cold and wet"]
    gold = [4.5, 4.0, 3.5, 4.8, 0.5, 1.0]
    path = tmp_path / "sts.csv"
    import pandas as pd
    pd.DataFrame({"s1": a, "s2": b, "score": gold}).to_csv(path, index=False)
    metrics_file = tmp_path / "m.json"
    assert evaluate_main(["--model", str(tiny_embedder), "--test-file", str(path), "--text-column", "s1",
                          "--text-b-column", "s2", "--label-column", "score", "--output", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    expected = spearmanr(gold, load(tiny_embedder).similarity(a, b)).statistic
    assert metrics["n"] == 6 and abs(metrics["spearman"] - expected) < 1e-6


def test_a_fine_tuned_runs_encoder_is_exported(trained, tiny_pair, tiny_embedder, tmp_path):
    from tfbert.embed import export_embeddings
    from tfbert.serving import load

    _, summary = trained
    run_dir = Path(summary["run_dir"])
    version = export_embeddings(tmp_path / "emb", run=run_dir, log=lambda *_: None)
    text = "what a lovely morning"
    got = load(version).embed([text])[0]
    checkpoint = str(run_dir / "checkpoints" / "best")
    np.testing.assert_allclose(got, manual_embedding(tiny_pair, text, 32, checkpoint), atol=1e-5)
    # Fine-tuning moved the encoder: the run's embedding is not the untrained encoder's.
    assert np.abs(got - load(tiny_embedder).embed([text])[0]).max() > 1e-3
    assert json.loads((version / "assets.extra" / "tfbert.json").read_text())["run"] == str(run_dir)


def test_bad_runs_are_named(tiny_pair, trained, tmp_path):
    import tf_keras as keras

    from tfbert.embed import export_embeddings
    from tfbert.encoders.layer import encoder_layer, restore_encoder_weights

    with pytest.raises(ValueError, match=r"no checkpoints/best.index"):
        (tmp_path / "run").mkdir()
        for name in ("config.json", "run.json"):
            (tmp_path / "run" / name).write_text("{}")
        export_embeddings(tmp_path / "out", run=tmp_path / "run")
    with pytest.raises(ValueError, match="not both"):
        export_embeddings(tmp_path / "out", run=trained[1]["run_dir"], encoder=str(tiny_pair))
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.save_weights(str(tmp_path / "other" / "best"))
    with pytest.raises(ValueError, match="no saved value for the encoder variable .*another encoder"):
        restore_encoder_weights(encoder_layer(str(tiny_pair / "encoder")), str(tmp_path / "other" / "best"))
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.slow
def test_default_encoder_embeddings_match_hugging_face(minilm_pair, tmp_path):
    """The default checkpoint's embeddings against transformers' mean-pooled, normalised outputs (stored by
    tools/make_embedding_reference.py): 17 awkward sentences, 200 tweets, 3 texts cut at 256 wordpieces."""
    from tfbert.embed import export_embeddings
    from tfbert.serving import load

    ref = np.load(REFERENCE)
    version = export_embeddings(tmp_path / "emb", log=lambda *_: None)
    got = load(version).embed(ref["texts"].tolist(), batch_size=64)
    worst = np.abs(got - ref["embeddings"]).max(axis=1)
    assert worst.max() < 1e-4, f"{int((worst >= 1e-4).sum())} texts differ, worst {worst.max():.2e}: " \
                               f"{ref['texts'][int(worst.argmax())]!r}"
    cosine = (got * ref["embeddings"]).sum(1)
    assert cosine.min() > 1 - 1e-6
