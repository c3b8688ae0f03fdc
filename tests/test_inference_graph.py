"""The export's forward-only inference graph against the trained Keras core it is built from."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras
from conftest import TINY

from tfbert.data.inputs import InputSettings
from tfbert.encoders.inference_graph import SMALL_LAYER_NORM_ROWS, inference_graph
from tfbert.export.classifier import export_classifier
from tfbert.tasks.classification import build_classifier

HEAD = [("pooled", "logits")]
TEXTS = ["", "good", "a much longer tweet about the service, which was slow and the food was cold again",
         "ok then", "Ünïcödé 👍🏽 日本語", "fine " * 20]


@pytest.fixture(scope="module")
def tiny_bf16_pair(tmp_path_factory, checkpoint_dir):
    from tfbert.encoders.convert import convert
    return convert(checkpoint_dir, tmp_path_factory.mktemp("enc") / "tiny-bf16", random_init=True, overrides=TINY,
                   precision="bf16", log=lambda *_: None)


def _trained_like(pair, pooling, seed=1):
    """A classifier on the pair with every weight moved off its initial value (a stand-in for training)."""
    model = build_classifier(str(pair / "encoder"), 3, pooling=pooling)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype(np.float32))
    return model


def _inputs(pair, pairs=False, texts=TEXTS):
    pre = hub.load(str(pair / "preprocess"))
    segments = [pre.tokenize(tf.constant(texts)).merge_dims(-2, -1)]
    if pairs:
        segments.append(pre.tokenize(tf.constant(texts[::-1])).merge_dims(-2, -1))
    return pre.bert_pack_inputs(segments, seq_length=40)


@pytest.mark.parametrize("pooling", ["pooled", "cls", "mean"])
@pytest.mark.parametrize("pairs", [False, True])
def test_fp32_inference_graph_equals_the_trained_core(tiny_pair, pooling, pairs, monkeypatch):
    """Same logits as the Keras core: fused QKV, folded scale, fused LayerNorm and the [CLS]-only last layer
    change the arithmetic, not the answer (padding, segment ids and every pooling included), on a batch small
    enough for the elementwise LayerNorm and on one large enough for the fused one."""
    core = _trained_like(tiny_pair, pooling)
    small = SMALL_LAYER_NORM_ROWS[tf.bfloat16]  # float32 graphs are always elementwise: check bf16's two forms here
    monkeypatch.setitem(SMALL_LAYER_NORM_ROWS, tf.float32, small)
    graph, why = inference_graph(core, str(tiny_pair / "encoder"), [(pooling, "logits")])
    assert graph is not None, why
    assert graph.compute_dtype == tf.float32 and graph.reads == (pooling,)
    for texts in (TEXTS, TEXTS * 2):
        batch = _inputs(tiny_pair, pairs, texts)
        assert (np.prod(batch["input_mask"].shape) > small) == (texts is not TEXTS)
        expected = core(batch, training=False).numpy()
        np.testing.assert_allclose(graph(batch).numpy(), expected, atol=2e-5 * max(1, np.abs(expected).max()))
    inputs = _inputs(tiny_pair, pairs)
    expected = core(inputs, training=False).numpy()
    # The pooling is what the exporter is told, not read from the core: another one answers differently, which the
    # export's comparison with the core catches (the trained graph is served then).
    other, _ = inference_graph(core, str(tiny_pair / "encoder"), [("mean" if pooling != "mean" else "cls", "logits")])
    assert np.abs(other(inputs).numpy() - expected).max() > 1e-3


def test_one_encoder_pass_serves_several_heads_as_the_keras_core_does(tiny_pair):
    """A multitask core's outputs (a tagger head on every position, heads on the masked mean and the pooled
    output) from one forward pass: each equal to the Keras core's, in output order; a head the core does not have
    is refused by name."""
    from tfbert.encoders.layer import encoder_layer
    from tfbert.tasks.classification import encoder_inputs, pooled_head
    from tfbert.tasks.ner import tag_head
    inputs = encoder_inputs()
    outputs = encoder_layer(str(tiny_pair / "encoder"))(inputs)
    core = tf_keras.Model(inputs, [tag_head(outputs, 5, prefix="ner_"),
                                   pooled_head(inputs, outputs, 3, pooling="mean", prefix="mood_"),
                                   pooled_head(inputs, outputs, 1, prefix="score_")])
    rng = np.random.default_rng(2)
    for v in core.weights:
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype(np.float32))
    heads = [("tokens", "ner_tag_logits"), ("mean", "mood_logits"), ("pooled", "score_logits")]
    graph, why = inference_graph(core, str(tiny_pair / "encoder"), heads)
    assert graph is not None, why
    batch = _inputs(tiny_pair, texts=TEXTS * 2)
    real = batch["input_mask"].numpy() == 1
    expected, got = core(batch, training=False), graph(batch)
    assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected]
    for e, g, reads in zip(expected, got, ("tokens", "mean", "pooled")):
        e, g = e.numpy(), g.numpy()
        if reads == "tokens":  # padding positions are nobody's answer
            e, g = e[real], g[real]
        np.testing.assert_allclose(g, e, atol=2e-5 * max(1, np.abs(e).max()), err_msg=reads)
    graph, why = inference_graph(core, str(tiny_pair / "encoder"), [("pooled", "mood_logits"), ("cls", "nope")])
    assert graph is None and "nope" in why


def test_bf16_inference_graph_is_close_and_multiplies_constant_bf16_kernels(tiny_bf16_pair, tmp_path):
    core = _trained_like(tiny_bf16_pair, "pooled")
    graph, why = inference_graph(core, str(tiny_bf16_pair / "encoder"), [("pooled", "logits")])
    assert graph is not None and graph.compute_dtype == tf.bfloat16, why
    inputs = _inputs(tiny_bf16_pair)
    expected = tf.nn.softmax(core(inputs, training=False)).numpy()
    got = tf.nn.softmax(graph(inputs)).numpy()
    assert np.abs(got - expected).max() < 0.01
    # Every encoder matmul reads a bf16 constant kernel: nothing to cast or re-lay-out per call.
    concrete = graph.forward.get_concrete_function()
    ops = {op.name: op for op in concrete.graph.get_operations()}
    matmuls = [op for op in ops.values() if op.type == "MatMul" and op.get_attr("T") == tf.bfloat16]
    assert len(matmuls) == 4 * TINY["num_layers"] + 1  # qkv, attention output, 2 feed-forward; pooler
    assert all(op.inputs[1].op.type == "Const" for op in matmuls)


def test_export_serves_the_inference_graph_and_keeps_the_core_when_it_cannot(tiny_pair, tmp_path, monkeypatch):
    import tfbert.export.classifier as export
    import tfbert.export.serving_core as serving_core
    core = _trained_like(tiny_pair, "pooled")
    info = {}
    version = export_classifier(core, str(tiny_pair / "preprocess"), ["a", "b", "c"], tmp_path / "m",
                                inputs=InputSettings(64), encoder_handle=str(tiny_pair / "encoder"), check_texts=TEXTS,
                                info=info, log=lambda *_: None)
    assert info["graph"] == "inference" and info["check_texts"] == len(export.CHECK_TEXTS) + len(TEXTS)
    assert info["max_diff"] < 1e-3 and info["label_agreement"] == 1.0
    served = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant(TEXTS))
    inputs = _inputs(tiny_pair)
    np.testing.assert_allclose(served["probabilities"].numpy(),
                               tf.nn.softmax(core(inputs, training=False)).numpy(), atol=1e-4)

    # An encoder without tfbert's metadata (any other TF Hub model): the trained graph, said why (the export of a
    # trained graph is the last case's).
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_pair / "encoder", foreign / "encoder")
    served, info = serving_core.choose_serving_core(core, str(foreign / "encoder"), None, TEXTS,
                                                    [serving_core.ServedHead("logits", "pooled", "classifier")],
                                                    log=lambda *_: None)
    assert served is core and info == {"graph": "trained", "reason": "the encoder was not converted by tfbert"}

    # A graph that disagrees with the trained model is not exported.
    monkeypatch.setitem(serving_core.INFERENCE_GRAPH_TOLERANCE, tf.float32, -1.0)
    lines, info = [], {}
    export_classifier(core, str(tiny_pair / "preprocess"), ["a", "b", "c"], tmp_path / "m", inputs=InputSettings(64),
                      encoder_handle=str(tiny_pair / "encoder"), info=info, log=lines.append)
    assert info["graph"] == "trained" and "differ from the trained model's" in info["reason"]
    assert any(line.startswith("WARNING: serving graph") for line in lines)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]


def test_unknown_activation_or_missing_variables_are_refused(tiny_pair, tmp_path):
    core = _trained_like(tiny_pair, "pooled")
    pair = tmp_path / "pair"
    shutil.copytree(tiny_pair, pair)
    meta = json.loads((pair / "tfbert.json").read_text())
    meta["config"]["hidden_act"] = "swish"
    (pair / "tfbert.json").write_text(json.dumps(meta))
    assert inference_graph(core, str(pair / "encoder"), HEAD) == (None, "activation 'swish' is not supported")
    meta["config"]["hidden_act"], meta["config"]["num_layers"] = "gelu", TINY["num_layers"] + 1
    (pair / "tfbert.json").write_text(json.dumps(meta))
    graph, why = inference_graph(core, str(pair / "encoder"), HEAD)
    assert graph is None and why == f"encoder variable 'layer_{TINY['num_layers']}_self_attention/query/kernel' not found"
