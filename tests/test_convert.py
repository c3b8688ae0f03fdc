"""The converter: TF Hub interface, atomic writes, errors. Parity with Hugging Face is in test_parity.py."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras
from conftest import write_hf_checkpoint

from tfbert.encoders.checkpoint import CheckpointError
from tfbert.encoders.convert import convert, read_metadata


def test_tiny_pair_has_tf_hub_layout_and_metadata(tiny_pair):
    for part in ("preprocess", "encoder"):
        assert (tiny_pair / part / "saved_model.pb").is_file()
    meta = read_metadata(tiny_pair)
    assert meta["config"]["num_layers"] == 2 and meta["config"]["hidden_size"] == 32
    assert meta["weights"] == "random init" and meta["pooled_output"].startswith("random init")
    assert not [p for p in tiny_pair.parent.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_special_tokens_dict(tiny_pair, checkpoint_dir):
    vocab = (checkpoint_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    special = {k: int(v) for k, v in hub.load(str(tiny_pair / "preprocess")).tokenize.get_special_tokens_dict().items()}
    assert special == {"vocab_size": 30522, "padding_id": vocab.index("[PAD]"),
                       "start_of_sequence_id": vocab.index("[CLS]"), "end_of_segment_id": vocab.index("[SEP]"),
                       "mask_id": vocab.index("[MASK]")}


def test_pack_inputs_round_robin_truncation(tiny_pair):
    pre = hub.load(str(tiny_pair / "preprocess"))
    a = pre.tokenize(tf.constant(["one two three four five six seven eight nine ten"]))
    b = pre.tokenize(tf.constant(["alpha beta gamma"]))
    out = pre.bert_pack_inputs([a, b], seq_length=8)  # 8 - 3 specials = 5 tokens: round robin gives a 3, b 2
    a_ids, b_ids = a.merge_dims(-2, -1).numpy()[0], b.merge_dims(-2, -1).numpy()[0]
    np.testing.assert_array_equal(out["input_word_ids"].numpy()[0], [101, *a_ids[:3], 102, *b_ids[:2], 102])
    np.testing.assert_array_equal(out["input_type_ids"].numpy()[0], [0, 0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(out["input_mask"].numpy()[0], [1] * 8)
    short = pre.bert_pack_inputs([pre.tokenize(tf.constant(["hi"]))], seq_length=6)
    np.testing.assert_array_equal(short["input_mask"].numpy()[0], [1, 1, 1, 0, 0, 0])
    assert short["input_word_ids"].dtype == tf.int32
    default = pre(tf.constant(["hi", "there you"]))
    assert default["input_word_ids"].shape == (2, 128)


def test_public_tf_hub_recipe_runs_unchanged_and_trains_encoder(tiny_pair):
    """The tfhub.dev BERT classifier recipe, verbatim apart from the handles."""
    text_input = keras.layers.Input(shape=(), dtype=tf.string)
    preprocessor = hub.KerasLayer(str(tiny_pair / "preprocess"))
    encoder = hub.KerasLayer(str(tiny_pair / "encoder"), trainable=True)
    outputs = encoder(preprocessor(text_input))
    assert outputs["sequence_output"].shape[-1] == 32 and len(outputs["encoder_outputs"]) == 2
    logits = keras.layers.Dense(2)(keras.layers.Dropout(0.1)(outputs["pooled_output"]))
    model = keras.Model(text_input, logits)
    assert len(encoder.trainable_weights) > 20
    before = [w.numpy().copy() for w in encoder.trainable_weights]
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(tf.constant(["good movie", "bad movie"]), tf.constant([1, 0]), epochs=1, verbose=0)
    changed = sum(not np.allclose(b, w.numpy()) for b, w in zip(before, encoder.trainable_weights))
    assert changed > len(before) // 2


def test_encoder_takes_any_length_up_to_maximum(tiny_pair):
    enc = hub.load(str(tiny_pair / "encoder"))
    for length in (3, 57, 128):
        x = {k: tf.ones([2, length], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}
        assert enc(x, training=False)["sequence_output"].shape == (2, length, 32)
    with pytest.raises(Exception):
        enc({k: tf.ones([1, 129], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")})


def test_padding_does_not_change_real_positions(tiny_pair):
    pre, enc = hub.load(str(tiny_pair / "preprocess")), hub.load(str(tiny_pair / "encoder"))
    short = pre.bert_pack_inputs([pre.tokenize(tf.constant(["a short one"]))], seq_length=5)
    padded = pre.bert_pack_inputs([pre.tokenize(tf.constant(["a short one"]))], seq_length=40)
    a = enc(short, training=False)["sequence_output"].numpy()[0]
    b = enc(padded, training=False)["sequence_output"].numpy()[0, :5]
    assert np.abs(a - b).max() < 1e-5


def test_checkpoint_without_pooler_gets_seeded_random_pooler(tmp_path, checkpoint_dir):
    src = write_hf_checkpoint(tmp_path / "ckpt", checkpoint_dir / "vocab.txt", with_pooler=False)
    out1 = convert(src, tmp_path / "a", log=lambda *_: None)
    out2 = convert(src, tmp_path / "b", log=lambda *_: None)
    assert "no pooler weights" in read_metadata(out1)["pooled_output"]
    x = hub.load(str(out1 / "preprocess"))(tf.constant(["same seed"]))
    p1 = hub.load(str(out1 / "encoder"))(x, training=False)["pooled_output"].numpy()
    p2 = hub.load(str(out2 / "encoder"))(x, training=False)["pooled_output"].numpy()
    np.testing.assert_array_equal(p1, p2)
    assert np.abs(p1).max() > 0


def test_checkpoint_weights_are_loaded(tmp_path, checkpoint_dir):
    from safetensors.numpy import load_file
    src = write_hf_checkpoint(tmp_path / "ckpt", checkpoint_dir / "vocab.txt")
    out = convert(src, tmp_path / "pair", log=lambda *_: None)
    enc = hub.load(str(out / "encoder"))
    by_name = {v.name: v.numpy() for v in enc.variables}
    word = next(v for k, v in by_name.items() if k.startswith("word_embeddings"))
    np.testing.assert_array_equal(word, load_file(str(src / "model.safetensors"))["embeddings.word_embeddings.weight"])


@pytest.mark.parametrize("breakage, message", [
    ("missing_vocab", "missing vocab.txt"),
    ("roberta", "unknown architecture"),
    ("wrong_shape", "has shape"),
    ("missing_weight", "missing weight 'encoder.layer.0.output.dense.bias'"),
    ("bad_json", "not valid JSON"),
])
def test_bad_source_errors_name_the_fault(tmp_path, checkpoint_dir, breakage, message):
    src = write_hf_checkpoint(tmp_path / "ckpt", checkpoint_dir / "vocab.txt")
    if breakage == "missing_vocab":
        (src / "vocab.txt").unlink()
    elif breakage == "roberta":
        (src / "config.json").write_text('{"model_type": "roberta", "architectures": ["RobertaModel"]}')
    elif breakage == "wrong_shape":
        write_hf_checkpoint(src, checkpoint_dir / "vocab.txt", inter=16, config_overrides={"intermediate_size": 24})
    elif breakage == "missing_weight":
        from safetensors.numpy import load_file, save_file
        w = load_file(str(src / "model.safetensors"))
        del w["encoder.layer.0.output.dense.bias"]
        save_file(w, str(src / "model.safetensors"))
    elif breakage == "bad_json":
        (src / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match=message):
        convert(src, tmp_path / "out", log=lambda *_: None)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_existing_output_is_not_touched_and_failed_write_leaves_nothing(tmp_path, checkpoint_dir, monkeypatch):
    src = write_hf_checkpoint(tmp_path / "ckpt", checkpoint_dir / "vocab.txt")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        convert(src, tmp_path / "taken", log=lambda *_: None)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"

    import tfbert.encoders.convert as conv

    def boom(*a, **k):
        raise RuntimeError("simulated crash during verification")
    monkeypatch.setattr(conv, "_verify", boom)
    with pytest.raises(RuntimeError):
        convert(src, tmp_path / "new", log=lambda *_: None)
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "taken"]


def test_cli_error_is_one_line_and_nonzero(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tfbert.convert", "--source", str(tmp_path / "nope"),
                        "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


def _ops_with_dtype(saved_model_dir, ops, dtype) -> int:
    """How many `ops` nodes in the SavedModel's functions compute in `dtype`."""
    from tensorflow.core.protobuf import saved_model_pb2
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    nodes = [n for f in sm.meta_graphs[0].graph_def.library.function for n in f.node_def]
    return sum(1 for n in nodes if n.op in ops and n.attr["T"].type == dtype)


def test_bf16_encoder_multiplies_in_bfloat16_returns_float32_and_stays_close(tmp_path, checkpoint_dir, tiny_pair):
    from conftest import TINY
    from tensorflow.core.framework import types_pb2
    out = convert(checkpoint_dir, tmp_path / "bf16", random_init=True, overrides=TINY, precision="bf16",
                  log=lambda *_: None)  # same seed as tiny_pair: same weights
    assert read_metadata(out)["precision"] == "bf16"
    matmuls = {"MatMul", "BatchMatMulV2", "Einsum"}
    assert _ops_with_dtype(out / "encoder", matmuls, types_pb2.DT_BFLOAT16) > 0
    assert _ops_with_dtype(tiny_pair / "encoder", matmuls, types_pb2.DT_BFLOAT16) == 0

    inputs = hub.load(str(tiny_pair / "preprocess"))(tf.constant(["a bf16 encoder", "keeps float32 outputs"]))
    fp32 = hub.load(str(tiny_pair / "encoder"))(inputs)
    bf16 = hub.load(str(out / "encoder"))(inputs)
    for key in ("sequence_output", "pooled_output"):
        assert bf16[key].dtype == tf.float32
        diff = np.abs(bf16[key].numpy() - fp32[key].numpy()).max()
        assert 0 < diff < 0.05 * np.abs(fp32[key].numpy()).max(), (key, diff)  # rounded, yet the same function
    layer = hub.KerasLayer(str(out / "encoder"), trainable=True)
    assert layer.trainable_weights and all(v.dtype == tf.float32 for v in layer.trainable_weights)


def test_exact_gelu_matches_the_erf_definition_in_both_precisions():
    from tfbert.encoders.bert import exact_gelu
    x = tf.constant(np.linspace(-8, 8, 1001), tf.float32)
    reference = tf.nn.gelu(x, approximate=False)  # erfc form
    np.testing.assert_allclose(exact_gelu(x).numpy(), reference.numpy(), atol=1e-6)
    y = exact_gelu(tf.cast(x, tf.bfloat16))
    assert y.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), reference.numpy(), atol=0.04, rtol=0.01)


def test_kept_layers_are_the_checkpoints_own(tmp_path, checkpoint_dir):
    """An encoder of layers 1 and 3 of a 4-layer checkpoint computes what a 2-layer checkpoint made of exactly those
    layers computes (same embeddings and pooler), so no other layer's weight leaked in and the order is kept."""
    from safetensors.numpy import load_file, save_file
    src = write_hf_checkpoint(tmp_path / "four", checkpoint_dir / "vocab.txt", layers=4)
    out = convert(src, tmp_path / "kept", layers=(1, 3), log=lambda *_: None)
    meta = read_metadata(out)
    assert meta["config"]["num_layers"] == 2 and meta["source_layers"] == [1, 3] and meta["source_num_layers"] == 4

    two = tmp_path / "two"
    write_hf_checkpoint(two, checkpoint_dir / "vocab.txt", layers=2)
    weights = load_file(str(src / "model.safetensors"))
    renamed = {k.replace("encoder.layer.1.", "encoder.layer.0.").replace("encoder.layer.3.", "encoder.layer.1."): v
               for k, v in weights.items() if not k.startswith(("encoder.layer.0.", "encoder.layer.2."))}
    save_file(renamed, str(two / "model.safetensors"))
    reference = convert(two, tmp_path / "reference", log=lambda *_: None)

    x = hub.load(str(out / "preprocess"))(tf.constant(["which layers were kept", "a second text"]))
    got = hub.load(str(out / "encoder"))(x, training=False)
    want = hub.load(str(reference / "encoder"))(x, training=False)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-6)


@pytest.mark.parametrize("layers, message", [((2, 1), "increasing"), ((0, 4), "0 to 3"), ((), "increasing")])
def test_bad_kept_layers_are_refused_before_anything_is_written(tmp_path, checkpoint_dir, layers, message):
    src = write_hf_checkpoint(tmp_path / "four", checkpoint_dir / "vocab.txt", layers=4)
    with pytest.raises(CheckpointError, match=message):
        convert(src, tmp_path / "out", layers=layers, log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_layer_selection_rules():
    from tfbert.encoders.checkpoint import select_layers
    assert select_layers(6, 3, "bottom") == (0, 1, 2)
    assert select_layers(6, 3, "spread") == (0, 2, 4)  # DistilBERT's every other layer
    assert select_layers(12, 4, "spread") == (0, 3, 6, 9)
    assert select_layers(6, 6, "spread") == tuple(range(6))
    with pytest.raises(CheckpointError, match="has 6 transformer layers"):
        select_layers(6, 7)
