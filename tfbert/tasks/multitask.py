"""Several tasks on one encoder (`--task multitask`): joint training through the one loop, one export for all.

    python -m tfbert.train --task multitask                      # built-in: sentiment, NER, entity types per tweet
    python -m tfbert.train --task multitask --tasks sentiment,regression
    python -m tfbert.train --task multitask --tasks-file tasks.json           # your files, one entry per task

Each member is a real task of the registry (sentiment, classify, multilabel, regression) with its own settings
(the run's, plus its data settings and options, completed with its task's defaults), its own data loading, checks,
datasets, loss, validation metric, after-training fits and test scoring. This module only combines them:
- Model: one encoder, one head per member (its task's Task.head: pooled, or per token for ner; layers prefixed
  with the head's name), outputs keyed by head name.
- Batches: each training batch comes from one member, as that member's own datasets make it; its targets go to
  its head (the other heads get zeros with sample weight 0, so a step trains the encoder and one head).
  Classification's class weights become that head's per-row sample weights. The members are drawn in a sequence
  reshuffled each epoch, member i `draw_counts` times: its batches per pass times the passes it makes alone (its
  task's default epochs, raised to reach --min-steps) over the most any member makes (`member_passes`), so over
  the default epochs each member gets the passes it gets alone; temperature-scaled with --sampling-temperature. The epoch's step count is exact, as the loop plans it.
- Validation: `MultitaskValidation` evaluates each member's head on the member's validation split with the member's
  compiled metrics and validation callback, writes val_<head>_<metric>, and val_multitask_score = the mean of the
  members' monitored values, which early stopping and the best checkpoint follow.
- Export: tfbert.export.multitask (one tokenization and one encoder pass per request; serving_<head> and
  serving_default); the test report scores each head through its own client (tfbert.serving.multitask).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfbert import tasks
from tfbert.encoders.layer import encoder_layer
from tfbert.export.multitask import export_multitask
from tfbert.files import write_json
from tfbert.tasks.base import Datasets, Task
from tfbert.tasks.catalog import Member, MultitaskData, MultitaskSpec
from tfbert.tasks.classification import encoder_inputs

CHECK_TEXTS = 32  # test texts (of all members) the export checks in the fresh process


def draw_counts(steps: list[int], temperature: float = 1.0, passes: list[float] | None = None) -> list[int]:
    """Batches drawn from each member in one epoch. Member i's budget is steps_i x passes_i (its batches per pass
    times its share of a pass per epoch; default 1 each); an epoch holds the budgets summed, shared in proportion to
    budget_i^(1/T) (rounded by largest remainder; at least one each). T = 1: each member's own budget."""
    budget = np.asarray(steps, np.float64) * (np.ones(len(steps)) if passes is None else np.asarray(passes))
    share = budget ** (1.0 / temperature)
    total = int(round(budget.sum()))
    raw = share / share.sum() * total
    counts = np.floor(raw).astype(int)
    for i in np.argsort(counts - raw, kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return np.maximum(counts, 1).tolist()


def member_passes(steps: list[int], epochs: list[int], min_steps: int = 0) -> list[float]:
    """Each member's share of a pass over its data per epoch: the passes it makes alone (its task's default epochs,
    raised to reach --min-steps as the loop raises them) over the most any member makes, so that over that many
    epochs (the multitask default) every member is trained as often as alone."""
    alone = [max(e, -(-min_steps // max(s, 1))) for s, e in zip(steps, epochs)]
    return [a / max(alone) for a in alone]


def joint_batches(sets: list, weights: list, counts: list[int], seed: int):
    """One dataset of (inputs, {head: targets}, {head: sample weights}) from the members' (inputs, targets) batch
    datasets `sets` (head name, dataset), `counts[i]` batches of member i per pass in a reshuffled order. `weights[i]`:
    member i's class weights (a vector indexed by its integer targets) or None."""
    names = [name for name, _ in sets]
    specs = {name: ds.element_spec[1] for name, ds in sets}

    def joint(i):
        own = names[i]

        def to_joint(x, y):
            rows = tf.shape(x["input_word_ids"])[0]
            targets, sample_weights = {}, {}
            for name in names:
                spec = specs[name]
                if name == own:
                    targets[name] = y
                    sample_weights[name] = (tf.ones([rows]) if weights[i] is None
                                            else tf.gather(tf.constant(weights[i], tf.float32), tf.cast(y, tf.int32)))
                else:  # a per-token target's unknown length is the batch's
                    shape = [rows] + [tf.shape(x["input_word_ids"])[1] if d is None else d for d in spec.shape[1:]]
                    targets[name], sample_weights[name] = tf.zeros(tf.stack(shape), spec.dtype), tf.zeros([rows])
            return x, targets, sample_weights

        return sets[i][1].map(to_joint).repeat()

    order = np.repeat(np.arange(len(sets), dtype=np.int64), counts)
    choice = tf.data.Dataset.from_tensor_slices(order).shuffle(len(order), seed=seed, reshuffle_each_iteration=True)
    # The members repeat, so tf.data counts the choice as infinite; it ends with `order` (Keras needs to know).
    return tf.data.Dataset.choose_from_datasets([joint(i) for i in range(len(sets))], choice) \
        .apply(tf.data.experimental.assert_cardinality(len(order))).prefetch(tf.data.AUTOTUNE)


class MultitaskValidation(keras.callbacks.Callback):
    """Per epoch, each head scored on its member's validation split as the member scores it alone; writes
    val_<head>_<metric> for each and val_multitask_score (the mean of the members' monitored values)."""

    def __init__(self, heads: list[tuple]):
        super().__init__()
        self.heads = heads  # (name, sub-model compiled with the member's metrics, valid dataset, callback, monitor)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        values = []
        for name, model, valid, callback, monitor in self.heads:
            found = {f"val_{k}": float(v) for k, v in model.evaluate(valid, verbose=0, return_dict=True).items()}
            if callback is not None:  # e.g. regression's correlations, written into `found`
                callback.on_epoch_end(epoch, found)
            logs.update({f"val_{name}_{key[4:]}": value for key, value in found.items()})
            values.append(found[monitor])
        logs["val_multitask_score"] = float(np.mean(values))


def class_weight_vector(class_weight: dict | None):
    """Keras' class_weight {class id: weight} as a vector indexed by class id (None: unweighted)."""
    if not class_weight:
        return None
    return np.asarray([class_weight.get(i, 1.0) for i in range(max(class_weight) + 1)], np.float32)


def check_texts(data: MultitaskData) -> list[str]:
    """Test texts of every member (a tagger's sentences joined by spaces), CHECK_TEXTS in all."""
    each = -(-CHECK_TEXTS // len(data.members))
    texts = []
    for m in data.members:
        test = m.data.test
        rows = test["text"].astype(str).tolist() if hasattr(test, "columns") else [" ".join(s.tokens) for s in test]
        texts += rows[:each]
    return texts


class MultitaskTask(MultitaskSpec, Task):
    """The members' tasks (tfbert.tasks.create) on one encoder; see the module docstring."""

    def _tasks(self, data: MultitaskData) -> dict:
        if not hasattr(self, "member_tasks"):
            self.member_tasks = {m.name: tasks.create(m.spec.name) for m in data.members}
        return self.member_tasks

    def _each(self, data: MultitaskData):
        """(member, its task object) pairs, in the members' order."""
        found = self._tasks(data)
        return [(m, found[m.name]) for m in data.members]

    @staticmethod
    def _log(m: Member, log):
        return lambda message: log(f"{m.name}: {message}")

    def check_encoder(self, preprocess, handles) -> None:
        self._encoder = (preprocess, handles)  # the members check it in `datasets`, which knows them

    def datasets(self, data: MultitaskData, inputs, config, log=print) -> Datasets:
        for _, task in self._each(data):
            task.check_encoder(*self._encoder)
        self.member_sets = {m.name: task.datasets(m.data, inputs, m.config, self._log(m, log))
                            for m, task in self._each(data)}
        steps = [self.member_sets[m.name].steps_per_epoch for m in data.members]
        passes = member_passes(steps, [m.spec.defaults.get("epochs", config.epochs) for m in data.members],
                               config.min_steps)
        self.counts = dict(zip((m.name for m in data.members),
                               draw_counts(steps, config.sampling_temperature, passes)))
        log(f"multitask: {sum(self.counts.values())} batches an epoch, sampling temperature "
            f"{config.sampling_temperature}: " + ", ".join(
                f"{name} {count} ({count / step:.2f} of its {step} per pass)"
                for (name, count), step in zip(self.counts.items(), steps)))
        sets = [(m.name, self.member_sets[m.name].train) for m in data.members]
        weights = [class_weight_vector(self.member_sets[m.name].fit_kwargs.get("class_weight"))
                   for m in data.members]
        cuts = {m.name: self.member_sets[m.name].truncation for m in data.members}
        first = next(iter(cuts.values()))
        truncation = {"long_texts": first["long_texts"], "window": first["window"],
                      "splits": {split: {"rows": sum(c["splits"][split]["rows"] for c in cuts.values())}
                                 for split in first["splits"]}, "heads": cuts}
        return Datasets(joint_batches(sets, weights, list(self.counts.values()), config.seed), None,
                        sum(self.counts.values()), truncation=truncation)

    def build_model(self, encoder_handle: str, data: MultitaskData, config):
        inputs = encoder_inputs()
        encoder = encoder_layer(encoder_handle, freeze_encoder=config.freeze_encoder,
                                freeze_word_embeddings=config.freeze_word_embeddings)
        outputs = encoder(inputs)
        self.head_outputs = {m.name: task.head(inputs, outputs, m.data, m.config, prefix=f"{m.name}_",
                                               seed=config.seed + i) for i, (m, task) in enumerate(self._each(data))}
        # Each head alone, sharing the encoder and its weights: validation, after-training fits and the export.
        self.sub_models = {name: keras.Model(inputs, out, name=name) for name, out in self.head_outputs.items()}
        self.inputs = inputs
        return keras.Model(inputs, self.head_outputs, name="multitask")

    def compile_args(self, data: MultitaskData, config) -> dict:
        # Losses only: a head's compiled metrics would count the other members' batches (zero targets); each head is
        # scored on its own validation split instead (MultitaskValidation).
        return {"loss": {m.name: task.compile_args(m.data, m.config)["loss"] for m, task in self._each(data)}}

    def validation_callback(self, data: MultitaskData, datasets: Datasets, config):
        heads = []
        for m, task in self._each(data):
            model = self.sub_models[m.name]
            model.compile(**task.compile_args(m.data, m.config))
            callback = task.validation_callback(m.data, self.member_sets[m.name], m.config)
            if callback is not None:
                callback.set_model(model)
            heads.append((m.name, model, self.member_sets[m.name].valid, callback, task.monitor_of(m.config)))
        return MultitaskValidation(heads)

    def constant_score(self, data: MultitaskData):
        found = [task.constant_score(m.data) for m, task in self._each(data)]
        if any(f is None for f in found):
            return None
        return ("every head's constant answer (" + "; ".join(f"{m.name}: {what}" for m, (what, _) in
                                                             zip(data.members, found)) + ")",
                float(np.mean([value for _, value in found])))

    def after_training(self, model, data: MultitaskData, inputs, config, log=print) -> dict:
        return {"heads": {m.name: task.after_training(self.sub_models[m.name], m.data, inputs, m.config,
                                                      self._log(m, log)) for m, task in self._each(data)}}

    def test_metrics(self, directory, written: dict, data: MultitaskData):
        from tfbert.serving import load
        client, metrics, predictions = load(directory, written), {}, {}
        for m, task in self._each(data):
            metrics[m.name], predictions[m.name] = task.score_export(client.head(m.name), m.data)
        return metrics, predictions

    def report(self, metrics: dict) -> str:
        return "\n\n".join(f"head {name} ({self.member_tasks[name].name}):\n{self.member_tasks[name].report(values)}"
                           for name, values in metrics.items())

    def headline(self, metrics: dict) -> str:
        return "; ".join(f"{name}: {self.member_tasks[name].headline(values)}" for name, values in metrics.items())

    def plots(self, metrics: dict, predictions, data: MultitaskData, run_dir) -> None:
        for m, task in self._each(data):
            (run_dir / m.name).mkdir(exist_ok=True)
            task.plots(metrics[m.name], predictions[m.name], m.data, run_dir / m.name)

    def export(self, model, handles, data: MultitaskData, inputs, fitted: dict, base, config, metadata: dict,
               log=print):
        heads = {m.name: {"task": m.spec.name, **task.serving_head(m.data, fitted["heads"][m.name]),
                          "settings": m.config.to_dict(), **task.summary_extras(m.data)}
                 for m, task in self._each(data)}
        core = keras.Model(self.inputs, [self.head_outputs[name] for name in heads], name="multitask_core")
        facts = {}
        version = export_multitask(core, handles.preprocess, heads, base, inputs=inputs.settings,
                                   encoder_handle=handles.encoder, check_texts=check_texts(data), info=facts,
                                   metadata=metadata, log=log)
        return version, {"serving_graph": facts}

    def summary_extras(self, data: MultitaskData) -> dict:
        return {"members": {m.name: {"task": m.spec.name, "train_rows": m.spec.rows(m.data, "train"),
                                     "steps_per_pass": self.member_sets[m.name].steps_per_epoch,
                                     "batches_per_epoch": self.counts[m.name], **task.summary_extras(m.data)}
                            for m, task in self._each(data)}}

    def example_data(self, directory, rows: int = 48) -> dict:
        """Three members in a --tasks-file, each in its own task's example files: the sentiment tweets (head
        "mood"), Twitter NER and the multi-label entity types."""
        entries = []
        for task, name in (("sentiment", "mood"), ("ner", "ner"), ("multilabel", "multilabel")):
            folder = directory / name
            folder.mkdir(parents=True, exist_ok=True)
            entries.append({"task": task, "name": name, **tasks.create(task).example_data(folder, rows)})
        path = directory / "tasks.json"
        write_json(path, entries)
        return {"tasks_file": str(path)}
