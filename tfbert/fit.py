"""The one training loop: every task (tfbert/tasks/) trains, is tested and is exported through `fit`.

The loop owns what tasks share: seeding, the run folder (tfbert.run_folder: its lock, resume and finish), the
input side (tfbert.data.inputs), epochs and --min-steps, the distribution strategy, AdamW and its schedule,
per-layer freezing and rates (tfbert.layerwise), the callbacks (validation metric, best checkpoint, early
stopping, backup for resuming, CSV history, TensorBoard, progress lines), best weights, what the task fits after
training, the test report scored on the written export, history and plots, the summary and publishing the
export. An interrupted run resumes when started again with the same settings and data: its state lives in
<output-dir>/<model-name>/runs/in-progress/ until the export succeeds, then moves to runs/<version>/.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from tfbert import tasks
from tfbert.config import ConfigError, RunConfig
from tfbert.files import write_json
from tfbert.run_folder import (
    data_fingerprint,
    finish_run,
    finish_unexported,
    hold_model_folder,
    prepare_run_dir,
    published_export,
    read_history,
    record_published,
)
from tfbert.serving import read_metadata

__all__ = ["fit", "resolve_run_encoder", "output_base"]

# A run whose best validation value is within this of the task's constant answer (Task.constant_score: the majority
# class, no entities) learned nothing the export can use: the loop warns and records it.
COLLAPSE_MARGIN = 0.02


def fit(config: RunConfig, log=print, export: bool = True) -> dict:
    """Runs the whole job for `config`; returns the summary (export path, test metrics, run folder, timings).

    export=False (a trial of tfbert.tune): stops after training, scored by the best validation value of the task's
    monitor; no test evaluation (the test split stays unseen by the search) and no export."""
    t_start = time.time()
    spec = tasks.spec(config.task)
    config = config.with_task_defaults(spec, log)
    config.check()
    config.check_task(spec)
    spec.check_config(config, log)
    base = output_base(config, log)
    lock = hold_model_folder(base)  # one run at a time per model folder: a second one refuses here, in seconds
    try:
        # The data before TensorFlow loads: a bad file, column or label is reported in about a second, not 7-12 s.
        data = spec.load_data(config)
        task = tasks.create(config.task)

        from tfbert.distribute import make_strategy

        # First TF call of the run: MultiWorkerMirroredStrategy configures collective ops, which must precede any op.
        strategy = make_strategy(config.strategy, log=log)
        return _run(config, task, data, strategy, base, t_start, log, export)
    finally:
        lock.release()


def _run(config: RunConfig, task, data, strategy, base: Path, t_start: float, log, export: bool) -> dict:
    import tf_keras as keras

    from tfbert.callbacks import training_callbacks
    from tfbert.data.inputs import RunInputs
    from tfbert.data.pipeline import load_preprocess
    from tfbert.distribute import barrier, local_batch_sizes, shard_by_data
    from tfbert.export.publish import prestart_fresh_process
    from tfbert.layerwise import plan_layers
    from tfbert.metrics.plots import plot_history
    from tfbert.optim import make_optimizer

    monitor = task.monitor_of(config)
    keras.utils.set_random_seed(config.seed)
    for note in data.notes:
        log(f"data: {note}")
    log(f"data: {task.describe(data)}")

    handles = resolve_run_encoder(config, log)
    preprocess = load_preprocess(handles)
    task.check_encoder(preprocess, handles)

    inputs = RunInputs.from_config(preprocess, config)  # the run's one input side, for datasets and export
    ds = task.datasets(data, inputs, config, log)
    if config.augment:
        log(f"augment: {config.augment} at strength {config.augment_strength}, on the training split only, a new "
            "copy each epoch")
    multi_worker = config.strategy == "multi_worker"
    if multi_worker:
        ds.train, ds.valid = shard_by_data(ds.train), shard_by_data(ds.valid)
    epochs = ds.epochs or max(config.epochs, math.ceil(config.min_steps / ds.steps_per_epoch))
    if epochs > config.epochs and not ds.epochs:
        log(f"training for up to {epochs} epochs ({ds.steps_per_epoch} steps each) to reach --min-steps "
            f"{config.min_steps}")
    total_steps = ds.steps_per_epoch * epochs
    with strategy.scope():
        model = task.build_model(handles.encoder, data, config)
        layers = plan_layers(model, config, ds.steps_per_epoch, total_steps, log)
        optimizer = make_optimizer(config.learning_rate, total_steps, config.warmup_fraction, config.weight_decay,
                                   layerwise=layers.optimizer_settings)
        model.compile(optimizer, **task.compile_args(data, config))
    if multi_worker:  # compiled metrics are synced already: "auto" would sum them over workers in per-step logs
        model.distribute_reduction_method = "first"

    run_dir = base / "runs" / "in-progress"
    # The planned steps too: a resume whose plan differs (another tfbert's batching or sampling) would continue one
    # learning-rate schedule on another's batches.
    facts = {"encoder_handles": {"preprocess": handles.preprocess, "encoder": handles.encoder},
             "precision_used": handles.precision, "planned_steps": {"per_epoch": ds.steps_per_epoch,
                                                                    "total": total_steps}, **task.run_facts(data)}
    fingerprint = data_fingerprint(config.to_dict())
    if fingerprint:  # a resume on edited data would train on rows the interrupted run never saw
        facts["data"] = fingerprint
    if layers.facts:  # the per-layer plan: which parts are frozen, their rate factors and first steps
        facts["layers"] = layers.facts
    prepare_run_dir(run_dir, config.to_dict(), facts, log)
    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)
    # Early stopping waits for --min-steps (a small run still learning the class prior must not stop at its first
    # flat epochs) and, under --unfreeze, for the last part to thaw.
    hold = early_stopping_hold(config.min_steps, layers.last_thaw_step, ds.steps_per_epoch)
    if hold >= epochs:
        log(f"early stopping off: --min-steps {config.min_steps} (or the thaw) takes all {epochs} epochs; the best "
            f"epoch by {monitor} is kept")
    elif hold:
        log(f"early stopping watches {monitor} from epoch {hold + 1} on (after --min-steps and any thaw)")
    callbacks, best = training_callbacks(run_dir, task.validation_callback(data, ds, config), monitor,
                                         patience=config.patience, steps_per_epoch=ds.steps_per_epoch,
                                         batch_size=config.batch_size, verbose=verbose, log=log,
                                         state_dir=output_base(config, chief=True) / "runs" / "in-progress",
                                         hold_epochs=hold)
    trained_marker = run_dir / "training_done.json"
    if trained_marker.is_file():  # killed after training (during test or export): do not train again
        log(f"training already finished in {run_dir}; evaluating and exporting its best weights")
    else:
        t_fit = time.time()
        model.fit(ds.train, validation_data=ds.valid, epochs=epochs, callbacks=callbacks, verbose=verbose,
                  **ds.fit_kwargs)
        write_json(trained_marker, {"fit_seconds": round(time.time() - t_fit, 1)})
    fit_seconds = json.loads(trained_marker.read_text())["fit_seconds"]
    history = read_history(run_dir / "history.csv")
    best_value = max(history.get(monitor, [float("nan")]))
    constant = constant_baseline(task, data, monitor, best_value, log)
    if not export:
        return finish_unexported(run_dir, base, monitor, history, {
            "task": task.name, "train_rows": task.rows(data, "train"), "planned_steps_per_epoch": ds.steps_per_epoch,
            "fit_seconds": round(fit_seconds, 1), "total_seconds": round(time.time() - t_start, 1), **constant})
    tested = {}

    def test_metrics(directory: Path, written: dict) -> dict:  # the written export's answers, before publishing
        log(f"test: the export's answers on the {task.rows(data, 'test')} test {task.unit}")
        tested["metrics"], tested["predictions"] = task.test_metrics(directory, written, data)
        return tested["metrics"]

    published = published_export(run_dir) if not multi_worker else None
    if published:  # published, then stopped before its run folder was finished: finish it, do not export again
        version, fitted, export_facts = Path(published["export"]), published["fitted"], published["export_facts"]
        log(f"the export {version} was published before the run stopped; finishing its run folder")
        test_metrics(version, read_metadata(version))
    else:
        if task.serves_text:
            prestart_fresh_process()  # the export's fresh-process check imports TensorFlow meanwhile
        if multi_worker:
            barrier(strategy)  # the chief has written the best weights every worker loads
        model.load_weights(str(best)).expect_partial()
        fitted = fit_window_pooling(task, model, data, inputs, config, log)  # before after_training: it pools
        fitted.update(task.after_training(model, data, inputs, config, log))
        metadata = {"task": task.name, "settings": config.to_dict(), "test_metrics": test_metrics,
                    f"best_{monitor}": best_value, "encoder": handles.encoder, **constant}
        version, export_facts = task.export(model, handles, data, inputs, fitted, base, config, metadata, log)
        record_published(run_dir, version, fitted, export_facts)
    metrics = tested["metrics"]
    log(task.report(metrics))
    if history:
        plot_history(history, run_dir / "training_curves.png")
    task.plots(metrics, tested["predictions"], data, run_dir)
    summary = {"export": str(version), "task": task.name, "test": metrics, "epochs_run": len(history.get("loss", [])),
               f"best_{monitor}": best_value, "train_rows": task.rows(data, "train"), "planned_steps_per_epoch":
               ds.steps_per_epoch, "fit_seconds": round(fit_seconds, 1), "total_seconds": round(time.time() - t_start, 1),
               "data_notes": data.notes, "replicas_in_sync": strategy.num_replicas_in_sync,
               **({"worker_valid_batch": local_batch_sizes(strategy, ds.valid)} if multi_worker else {}),
               "truncation": ds.truncation, **constant, **fitted, **task.summary_extras(data), **export_facts}
    final_run = finish_run(run_dir, base, version, summary)
    log(f"{task.headline(metrics)}; model: {version}; run folder: {final_run}; {summary['total_seconds']:.0f}s in all")
    return summary


def fit_window_pooling(task, model, data, inputs, config, log=print) -> dict:
    """--window-pooling attention: its weights fitted on the validation texts' windows (tfbert.data.windows); from
    here on the run's pipelines, scores and export pool with them. {"window_pooling": facts} or {}."""
    if config.long_texts != "windows" or inputs.settings.window_pooling != "attention":
        return {}
    from tfbert.data.windows import MIN_FIT_TEXTS, fit_attention
    found = task.window_outputs(model, data, inputs, config)
    if found is None:  # the task pools no windows (ner reads each word from one window)
        return {}
    values, item, n_texts, loss = found
    weights, facts = fit_attention(values, item, n_texts, loss)
    inputs.fit_window_pooling(weights)
    several = facts["texts_with_several_windows"]
    if facts["fitted"]:
        log(f"window pooling: attention fitted on the {n_texts} validation {task.unit} ({several} of several "
            f"windows); validation loss {facts['loss_at_mean']:.4f} (mean) -> {facts['loss']:.4f}")
    else:
        log(f"WARNING: window pooling: {several} validation {task.unit} have several windows, attention needs "
            f"{MIN_FIT_TEXTS} to fit; it pools by the mean (give validation texts as long as those it will serve)")
    return {"window_pooling": {"how": "attention", "weights": weights, **facts}}


def early_stopping_hold(min_steps: int, last_thaw_step: int, steps_per_epoch: int) -> int:
    """Epochs early stopping does not watch: those that --min-steps plans and those before the last part thaws."""
    return max(-(-min_steps // steps_per_epoch), -(-last_thaw_step // steps_per_epoch))


def constant_baseline(task, data, monitor: str, best_value: float, log=print) -> dict:
    """{"constant_baseline": what, value, collapsed} for metrics.json and the export's metadata ({} when the task
    defines no constant answer); warns when the run's best validation value did not leave it."""
    found = task.constant_score(data)
    if found is None:
        return {}
    what, value = found
    collapsed = not best_value > value + COLLAPSE_MARGIN  # NaN (nothing logged) counts as collapsed
    if collapsed:
        log(f"WARNING: the run never left the constant answer: best validation {monitor} {best_value:.4f}, "
            f"{what} scores {value:.4f} (within {COLLAPSE_MARGIN}). The exported model is likely to answer the same "
            "for every text. With few or imbalanced rows try --class-weights balanced (classification), more "
            "--min-steps or a higher --learning-rate.")
    return {"constant_baseline": {"answer": what, monitor: value, "collapsed": collapsed}}


# --------------------------------------------------------------------------- encoder and output places


def resolve_run_encoder(config: RunConfig, log=print):
    """The run's encoder handles (converted on first use, in --precision), checked against --max-seq-length."""
    from tfbert.encoders.convert import encoder_metadata
    from tfbert.encoders.registry import resolve_encoder

    handles = resolve_encoder(config.encoder, config.preprocess, log=log, precision=config.precision,
                              layers=config.encoder_layers, layer_selection=config.layer_selection)
    meta = encoder_metadata(handles.encoder)
    kept = (f", transformer layers {meta['source_layers']} of {meta['source_num_layers']}"
            if "source_layers" in meta else "")
    log(f"encoder: {handles.encoder} ({handles.precision}{kept})")
    limit = meta.get("config", {}).get("max_position_embeddings")
    if limit and config.max_seq_length > limit:
        raise ConfigError(f"--max-seq-length {config.max_seq_length} is above the encoder's maximum of {limit} "
                          "positions")
    return handles


def output_base(config: RunConfig, log=print, chief: bool = False) -> Path:
    """<output-dir>/<model-name>; a non-chief worker of a multi-worker cluster writes under worker-<i>/ in it, so
    that only the chief's export is where a server looks (every worker runs the test predictions, which are
    collective, and the export, as TF has every worker save). chief=True: the chief's, on every worker."""
    from tfbert.distribute import worker_index

    base = Path(config.output_dir) / (config.model_name or config.task)
    index = worker_index() if config.strategy == "multi_worker" and not chief else None
    if index is not None:
        base = base / f"worker-{index}"
        log(f"non-chief worker {index}: this worker's copy of the outputs goes to {base}")
    return base
