"""Per-layer training on the tiny 2-layer encoder: --freeze-layers, --layer-lr-decay and --unfreeze (tfbert.layerwise
and tfbert.optim.LayerwiseAdamW), and the variable namings they understand."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfbert.config import ConfigError, RunConfig, make_config
from tfbert.encoders.layer import EncoderLayer
from tfbert.encoders.layer_names import LayerNamingError, encoder_layers
from tfbert.layerwise import plan_layers
from tfbert.optim import NO_DECAY, WarmupLinearDecay, make_optimizer
from tfbert.tasks import create
from tfbert.tasks.classification import build_classifier

QUIET = dict(log=lambda *_: None)
PARTS = ("head", "pooler", "layer_1", "layer_0", "embeddings")  # the tiny encoder's parts, top down


def part_of(name: str) -> str:
    for part, marks in (("embeddings", ("word_emb", "position_emb", "type_emb", "embeddings_layer_norm")),
                        ("layer_0", ("layer_0_",)), ("layer_1", ("layer_1_",)), ("pooler", ("pooler_transform",))):
        if any(m in name for m in marks):
            return part
    return "head"


def tiny_model(tiny_pair, **kwargs):
    return build_classifier(str(tiny_pair / "encoder"), 2, **kwargs)


def batches(n=16, seq=12, seed=0):
    rng = np.random.default_rng(seed)
    x = {"input_word_ids": rng.integers(1000, 2000, (n, seq)).astype(np.int32),
         "input_mask": np.ones((n, seq), np.int32), "input_type_ids": np.zeros((n, seq), np.int32)}
    return x, np.arange(n) % 2


def test_tfbert_and_tf_hub_namings_map_to_the_same_distances():
    tfbert = ["word_embeddings/embeddings:0", "embeddings_layer_norm/gamma:0", "layer_0_self_attention/query/kernel:0",
              "layer_0_output_layer_norm/beta:0", "layer_1_intermediate/kernel:0", "pooler_transform/kernel:0"]
    hub = ["word_embeddings/embeddings:0", "embeddings/layer_norm/gamma:0",
           "transformer/layer_0/self_attention/query/kernel:0", "transformer/layer_0/output_layer_norm/beta:0",
           "transformer/layer_1/intermediate/kernel:0", "pooler_transform/kernel:0"]
    for names, naming in ((tfbert, "tfbert"), (hub, "tf-hub")):
        layers = encoder_layers(names)
        assert (layers.num_layers, layers.naming) == (2, naming)
        assert list(layers.distance.values()) == [3, 3, 2, 2, 1, 0]
        assert [layers.part(d) for d in (0, 1, 2, 3)] == ["pooler", "layer_1", "layer_0", "embeddings"]


@pytest.mark.parametrize("names, message", [
    (["word_embeddings/embeddings:0", "albert/shared_layer/kernel:0"], "'albert/shared_layer/kernel:0'"),
    (["word_embeddings/embeddings:0"], "no transformer layer"),
    (["layer_0_output/kernel:0", "layer_2_output/kernel:0"], "no layer_1"),
])
def test_an_unknown_naming_is_refused_naming_a_variable(names, message):
    with pytest.raises(LayerNamingError, match=message):
        encoder_layers(names)


def test_the_loop_refuses_an_encoder_it_cannot_map_with_the_option_and_variable():
    class Odd(tf.Module):  # an encoder whose variables are named as no known BERT's are
        def __init__(self):
            self.w = tf.Variable(tf.ones([4, 4]), name="shared_block/kernel")

        @tf.function(input_signature=[tf.TensorSpec([None, 4])])
        def __call__(self, x):
            return tf.matmul(x, self.w)

    inputs = keras.Input((4,))
    model = keras.Model(inputs, EncoderLayer(Odd(), trainable=True)(inputs))
    with pytest.raises(ConfigError, match=r"--layer-lr-decay: .*'shared_block/kernel:0'"):
        plan_layers(model, RunConfig(layer_lr_decay=0.9), 2, 10, **QUIET)


@pytest.mark.parametrize("settings, message", [
    ({"unfreeze_every": 3}, "--unfreeze-every needs --unfreeze"),
    ({"freeze_layers": -1}, "--freeze-layers must be >= 0, not -1"),
    ({"layer_lr_decay": 1.5}, r"--layer-lr-decay must be in \(0, 1\], not 1.5"),
    ({"freeze_encoder": True, "unfreeze": True}, "--unfreeze: with --freeze-encoder"),
])
def test_contradictory_settings_are_refused(settings, message):
    config = make_config(settings).with_task_defaults(create("sentiment"), **QUIET)
    with pytest.raises(ConfigError, match=message):
        config.check()


def test_freeze_layers_keeps_embeddings_and_bottom_layers_bit_identical(tiny_pair):
    model = tiny_model(tiny_pair)
    with pytest.raises(ConfigError, match="--freeze-layers 3 is more than the encoder's 2 transformer layers"):
        plan_layers(tiny_model(tiny_pair), RunConfig(freeze_layers=3), 2, 10, **QUIET)
    plan = plan_layers(model, RunConfig(freeze_layers=1), 2, 10, **QUIET)
    assert plan.facts["frozen"] == ["layer_0", "embeddings"]
    trainable = {part_of(v.name) for v in model.trainable_variables}
    assert trainable == {"head", "pooler", "layer_1"}  # not trainable: no gradient, no optimizer update
    before = {v.name: v.numpy().copy() for v in model.weights}
    model.compile(make_optimizer(1e-2, 6, layerwise=plan.optimizer_settings),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*batches(), batch_size=8, epochs=3, verbose=0)
    for v in model.weights:
        if part_of(v.name) in ("layer_0", "embeddings"):
            np.testing.assert_array_equal(v.numpy(), before[v.name], err_msg=v.name)
    changed = {part_of(v.name) for v in model.weights if not np.array_equal(v.numpy(), before[v.name])}
    assert changed == {"head", "pooler", "layer_1"}


def test_layer_lr_decay_scales_each_parts_step_after_the_schedule_and_weight_decay(tiny_pair):
    """With a constant gradient Adam's bias-corrected step is rate * factor (m_hat = v_hat = 1, up to eps): three
    steps on the warm-up schedule move every variable by factor * sum of the scheduled rates, plus the decoupled
    weight decay at the same factor, except on NO_DECAY variables."""
    model = tiny_model(tiny_pair, freeze_word_embeddings=True)
    plan = plan_layers(model, RunConfig(layer_lr_decay=0.5), 2, 10, **QUIET)
    factors = {"head": 1.0, "pooler": 1.0, "layer_1": 0.5, "layer_0": 0.25, "embeddings": 0.125}
    assert plan.facts["rate_factors"] == factors
    peak, total, warmup, wd = 1e-2, 10, 0.2, 0.1
    opt = make_optimizer(peak, total, warmup, weight_decay=wd, clipnorm=None, layerwise=plan.optimizer_settings)
    variables = model.trainable_variables
    expected = {v.name: v.numpy().astype(np.float64) for v in variables}
    schedule = WarmupLinearDecay(peak, total, int(warmup * total))
    for step in range(3):
        opt.apply_gradients([(tf.ones_like(v), v) for v in variables])
        rate = float(schedule(step))
        assert step == 0 or rate > 0
        for v in variables:
            f, w = factors[part_of(v.name)], expected[v.name]
            decays = not any(n in v.name for n in NO_DECAY)
            root_v = np.sqrt(1 - 0.999 ** (step + 1))  # Adam's eps is added to the uncorrected root of v
            expected[v.name] = w - w * wd * rate * f * decays - rate * f * root_v / (root_v + 1e-6)
    for v in variables:
        np.testing.assert_allclose(v.numpy(), expected[v.name], rtol=1e-5, atol=1e-7, err_msg=v.name)


def test_gradual_unfreezing_trains_one_more_part_from_the_top_each_epoch(tiny_pair):
    model = tiny_model(tiny_pair, freeze_word_embeddings=True)
    steps_per_epoch, epochs = 2, 4
    plan = plan_layers(model, RunConfig(unfreeze=True, unfreeze_every=steps_per_epoch), steps_per_epoch,
                       steps_per_epoch * epochs, **QUIET)
    assert plan.facts["first_step"] == {"head": 0, "pooler": 0, "layer_1": 2, "layer_0": 4, "embeddings": 6}
    start = {v.name: v.numpy().copy() for v in model.trainable_variables}
    changed_after = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            changed_after.append({part_of(v.name) for v in model.trainable_variables
                                  if not np.array_equal(v.numpy(), start[v.name])})

    model.compile(make_optimizer(1e-2, steps_per_epoch * epochs, layerwise=plan.optimizer_settings),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*batches(), batch_size=8, epochs=epochs, verbose=0, callbacks=[Snapshot()])
    assert changed_after == [{"head", "pooler"}, {"head", "pooler", "layer_1"},
                             {"head", "pooler", "layer_1", "layer_0"}, set(PARTS)]


@pytest.mark.parametrize("steps_per_epoch, total_steps, first_steps", [
    (2, 40, (2, 4, 6)),  # a long run: one part an epoch
    (10, 30, (5, 10, 15)),  # a short run: the last part (the embeddings) starts by half of it, not at step 30
    (10, 4, (1, 2, 3)),  # shorter than the parts: one a step
])
def test_the_default_unfreezing_pace_trains_every_part_for_the_second_half(tiny_pair, steps_per_epoch, total_steps,
                                                                          first_steps):
    plan = plan_layers(tiny_model(tiny_pair, freeze_word_embeddings=True), RunConfig(unfreeze=True), steps_per_epoch,
                       total_steps, **QUIET)
    assert tuple(plan.facts["first_step"][p] for p in ("layer_1", "layer_0", "embeddings")) == first_steps
    assert plan.last_thaw_step == first_steps[-1]


@pytest.mark.parametrize("hold_epochs, epochs_run", [(0, 2), (4, 6)])
def test_early_stopping_waits_for_the_last_part_to_thaw(tmp_path, hold_epochs, epochs_run):
    # A score that only falls stops a patience-1 run after epoch 2; held for 4 epochs, the first epoch after the
    # hold is the baseline and the one after it the first that can stop the run (it once stopped an --unfreeze run
    # at epoch 4 of 19, before most layers had trained).
    from tfbert.callbacks import training_callbacks

    class FallingScore(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_macro_f1"] = 1.0 - epoch / 10

    callbacks, _ = training_callbacks(tmp_path, FallingScore(), "val_macro_f1", patience=1, steps_per_epoch=1,
                                      batch_size=4, verbose=0, log=lambda *_: None, hold_epochs=hold_epochs)
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=4, epochs=10, verbose=0, callbacks=callbacks)
    assert len(history.history["loss"]) == epochs_run


def test_the_loop_holds_early_stopping_until_unfreezing_ends(tiny_pair):
    model = tiny_model(tiny_pair, freeze_word_embeddings=True)
    plan = plan_layers(model, RunConfig(unfreeze=True), 2, 20, **QUIET)
    assert plan.last_thaw_step == 6  # the embeddings, 3 parts above them at 2 steps each
    assert plan_layers(tiny_model(tiny_pair), RunConfig(layer_lr_decay=0.9), 2, 20, **QUIET).last_thaw_step == 0


def test_the_loop_applies_the_options_and_records_the_plan_in_run_json(tmp_path, tiny_pair, tweets_csv):
    from tfbert.fit import fit
    from tfbert.train import parse_config
    config = parse_config([
        "--verbose", "0", "--task", "classify", "--train-file", str(tweets_csv), "--text-column", "tweet",
        "--label-column", "mood", "--encoder", str(tiny_pair), "--max-train-examples", "48", "--batch-size", "16",
        "--epochs", "1", "--min-steps", "0", "--output-dir", str(tmp_path), "--freeze-layers", "1", "--unfreeze",
        "--unfreeze-every", "2", "--layer-lr-decay", "0.8"])
    lines = []
    summary = fit(config, log=lines.append)
    facts = json.loads((tmp_path / "classify" / "runs" / "1" / "run.json").read_text())["layers"]
    assert facts == {"encoder_layers": 2, "naming": "tfbert", "frozen": ["layer_0", "embeddings"],
                     "rate_factors": {"head": 1.0, "pooler": 1.0, "layer_1": 0.8},
                     "first_step": {"head": 0, "pooler": 0, "layer_1": 2}}
    assert any(line.startswith("layers: 2 transformer layers") for line in lines)
    assert summary["epochs_run"] == 1


def test_schedule_warms_up_linearly_and_starts_at_the_peak_without_warm_up():
    warm = WarmupLinearDecay(1.0, total_steps=10, warmup_steps=4)
    assert [round(float(warm(s)), 4) for s in (0, 2, 4, 7, 10, 12)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    cold = WarmupLinearDecay(1.0, total_steps=10, warmup_steps=0)
    assert [round(float(cold(s)), 4) for s in (0, 5, 10)] == [1.0, 0.5, 0.0]  # step 0 trains
