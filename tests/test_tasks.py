"""The task conformance test: every registered task (tfbert.tasks.TASKS) builds on the tiny encoder, trains a few
steps through the one loop, exports, reloads in a fresh process that imports only tensorflow and tensorflow_text,
answers hostile and all-empty batches and its own TF Serving warm-up records, and round-trips through the predict
and evaluate command lines (whose scores on the test file are the run's metrics.json's). Registering a task makes it
tested here."""
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tfbert.config import RunConfig, make_config
from tfbert.export.publish import fresh_process_env
from tfbert.fit import fit
from tfbert.run_folder import read_history
from tfbert.tasks import TASKS

HOSTILE = ["", "   ", "\x00\x07\x1b", "Zoë 👍🏽 日本語 \u200b\u202e", "word " * 3000,
           b"bad \xff\xfe bytes".decode("utf-8", "replace"), "a"]
# The task's own plots in its run folder, beside the loop's training curves.
TASK_PLOTS = {"sentiment": ["confusion_matrix.png"], "classify": ["confusion_matrix.png"],
              "regression": ["test_scatter.png"]}
# Extra predict arguments: a QA model answers each TEXT (a question) about its --text-b (a context).
PREDICT_ARGS = {"qa": ["--text-b", "Paris is lovely", "--text-b", "", "--text-b", "John Smith flew to Paris"]}

# In a process with only tensorflow and tensorflow_text (tensorflow_serving's protos are read after the check of
# what is imported): hostile batches on every signature; batches whose texts are all empty (in every input); and the
# export's own warm-up records replayed as TF Serving replays them when it loads a model (each PredictionLog's
# request on its named signature, tensors from the protos), which fails the load if one fails.
_FRESH = r"""
import json, sys
from pathlib import Path
import numpy as np
import tensorflow as tf, tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
hostile = json.loads(sys.argv[2]) + ["x" * 100_000]  # built here: argv caps one argument near 128 KB
requests = {"hostile": hostile, "batch 1": hostile[2:3], "batch 1000": (hostile[:-1] * 143)[:1000],
            "empty 1": [""], "empty 2": ["", ""]}
out = {}


def record(call, res, values=False):
    out[call] = {k: [v.dtype.name, v.shape.as_list(),
                     bool(np.isfinite(v.numpy()).all()) if v.dtype.is_floating else True]
                 + ([np.char.decode(v.numpy().astype(bytes), "utf-8").tolist() if v.dtype == tf.string
                     else v.numpy().tolist()] if values else [])
                 for k, v in res.items()}


for name, fn in model.signatures.items():
    inputs = fn.structured_input_signature[1]
    for what, texts in requests.items():
        res = fn(**{k: tf.constant(texts if i == 0 else texts[::-1]) for i, k in enumerate(sorted(inputs))})
        record(f"{name} {what}", res, values=what.startswith("empty"))
assert not [m for m in sys.modules if m.split('.')[0] in ('tfbert', 'tensorflow_hub', 'tf_keras')]
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402
warmup = Path(sys.argv[1]) / "assets.extra" / "tf_serving_warmup_requests"
for i, raw in enumerate(tf.data.TFRecordDataset(str(warmup))):
    request = prediction_log_pb2.PredictionLog.FromString(raw.numpy()).predict_log.request
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    res = model.signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
    record(f"{request.model_spec.signature_name} warmup {i} {len(next(iter(inputs.values())))}", res)
print("RESULT" + json.dumps(out))
"""
# A batch of empty texts gets each task's empty answer (classifiers and scorers: a valid output per row).
EMPTY_ANSWERS = {"ner": {"num_entities": 0}, "qa": {"answer": ""},
                 "multitask": {"ner_num_entities": 0, "num_entities": 0}}  # its ner head, in both signatures


@pytest.fixture(scope="module", params=sorted(TASKS))
def trained_task(request, tmp_path_factory, tiny_pair):
    name = request.param
    directory = tmp_path_factory.mktemp(name)
    settings = TASKS[name]().example_data(directory)
    config = make_config(dict(task=name, encoder=str(tiny_pair), epochs=1, min_steps=0, batch_size=8, verbose=0,
                              output_dir=str(directory / "out"), **settings))  # settings may be task options
    return name, settings, fit(config, log=lambda *_: None)


def test_task_trains_and_writes_its_run_folder_and_metadata(trained_task):
    name, _, summary = trained_task
    task = TASKS[name]
    run = Path(summary["run_dir"])
    assert summary["task"] == name and summary["epochs_run"] == 1
    # One training example per row; QA: per window of a question's context (train_windows); multitask: the
    # members' draws summed, each its batches per pass times its task's epochs over the largest member's.
    members = summary.get("members", {"": {"train_rows": summary.get("train_windows", summary["train_rows"])}})
    assert all(m.get("steps_per_pass", -(-m["train_rows"] // 8)) == -(-m["train_rows"] // 8) for m in members.values())
    own = {h: TASKS[m["task"]].defaults["epochs"] for h, m in members.items() if "task" in m}  # min_steps 0 here
    assert summary["planned_steps_per_epoch"] == sum(
        m["batches_per_epoch"] if h in own else -(-m["train_rows"] // 8) for h, m in members.items())
    assert all(abs(m["batches_per_epoch"] - m["steps_per_pass"] * own[h] / max(own.values())) <= 1
               for h, m in members.items() if h in own)
    assert math.isfinite(summary[f"best_{task.monitor}"])  # the monitored value was logged (F1 or a correlation)
    for f in ("config.json", "run.json", "metrics.json", "history.csv", "training_curves.png",
              *TASK_PLOTS.get(name, [])):
        assert (run / f).is_file(), f
    # The run folder's config.json is a --config file that reproduces the run's settings.
    settings = json.loads((run / "config.json").read_text())
    options = {f.name for f in dataclasses.fields(task.options)} if task.options else set()
    assert settings["task"] == name and set(settings) == set(RunConfig.names()) | options
    assert make_config(settings).with_task_defaults(task) == make_config(settings)
    # How much the window cuts, per split, as numbers and as a data note (issue 16).
    cut = json.loads((run / "metrics.json").read_text())["truncation"]
    assert set(cut["splits"]) == {"train", "valid", "test"} and cut["splits"]["train"]["rows"] == summary["train_rows"]
    assert cut["long_texts"] == ("windows" if name == "qa" else "truncate")
    if name == "multitask":  # early stopping follows the mean of the heads' own monitors, each logged
        history = read_history(run / "history.csv")
        monitors = [f"val_mood_{TASKS['sentiment'].monitor[4:]}", f"val_ner_{TASKS['ner'].monitor[4:]}",
                    f"val_multilabel_{TASKS['multilabel'].monitor[4:]}"]
        assert math.isclose(history["val_multitask_score"][0], sum(history[m][0] for m in monitors) / 3,
                            rel_tol=1e-6), history
    for head in members:  # a multitask run's notes name the member they are about
        assert any(n.startswith(f"{head + ': ' if head else ''}Long texts ({cut['long_texts']})")
                   for n in summary["data_notes"]), (head, summary["data_notes"])
    meta = json.loads((Path(summary["export"]) / "assets.extra" / "tfbert.json").read_text())
    assert meta["task"] == name and meta["settings"]["task"] == name and meta["test_metrics"] == summary["test"]
    # Every head but a span reader's is served by the forward-only inference graph of its tfbert-converted encoder,
    # which answered as the trained model did (tfbert.export.serving_core); the run's metrics say so too.
    served = json.loads((run / "metrics.json").read_text())["serving_graph"]
    assert meta["serving_graph"] == served and served["graph"] == ("trained" if name == "qa" else "inference"), served
    assert meta["versions"]["tensorflow"].startswith("2.") and (meta.get("labels") or meta.get("tags")
                                                           or meta.get("outputs"))


def test_export_answers_hostile_input_and_its_warmup_in_a_process_with_only_tensorflow(trained_task):
    name, _, summary = trained_task
    r = subprocess.run([sys.executable, "-c", _FRESH, summary["export"], json.dumps(HOSTILE)], capture_output=True,
                       text=True, timeout=300, env=fresh_process_env())
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads([line for line in r.stdout.splitlines() if line.startswith("RESULT")][-1][len("RESULT"):])
    sizes = {"hostile": len(HOSTILE) + 1, "batch 1": 1, "batch 1000": 1000, "empty 1": 1, "empty 2": 2}
    assert {"serving_default hostile", "serving_default batch 1", "serving_default batch 1000"} <= set(out)
    warmups = [call for call in out if " warmup " in call]
    assert len(warmups) >= 2 and {"serving_default"} <= {call.split()[0] for call in warmups}
    for call, outputs in out.items():
        what = call.split(" ", 1)[1]
        rows = int(what.rsplit(" ", 1)[1]) if what.startswith("warmup") else sizes[what]
        for key, (_, shape, finite, *values) in outputs.items():
            assert shape[0] == rows and finite, (call, key, shape, finite)
            if what.startswith("empty") and key in EMPTY_ANSWERS.get(name, {}):
                assert values[0] == [EMPTY_ANSWERS[name][key]] * rows, (call, key, values)


def test_predict_and_evaluate_read_what_the_export_says_about_itself(trained_task, tmp_path, capsys):
    """The two CLIs' main(argv), in this process (tests/test_serving_cli.py runs `python -m` itself)."""
    from tfbert import evaluate, predict
    name, settings, summary = trained_task
    capsys.readouterr()
    code = predict.main([str(a) for a in ("--model", Path(summary["export"]).parent, "first text", "",
                                          "John Smith flew to Paris", *PREDICT_ARGS.get(name, []))])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["text"] for x in lines] == ["first text", "", "John Smith flew to Paris"]
    assert all(len(x) > 1 for x in lines)  # the text and the task's answer

    reported = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())["test"]
    if "tasks_file" in settings:  # multitask: every head alone, on its member's test file
        heads = {m["name"]: ({k: v for k, v in m.items() if k != "name"}, reported[m["name"]], ["--head", m["name"]])
                 for m in json.loads(Path(settings["tasks_file"]).read_text())}
        assert {x for line in lines for x in line} == {"text", *heads}  # without --head: every head's answer
        for head in heads:  # ... from serving_default's one pass, as serving_<head> answers alone
            assert predict.main([str(a) for a in ("--model", summary["export"], "--head", head, "first text", "",
                                                  "John Smith flew to Paris")]) == 0
            alone = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            assert all(_same({k: v for k, v in a.items() if k != "text"}, joint[head], 1e-4) for a, joint in
                       zip(alone, lines, strict=True)), (head, alone, lines)
        assert evaluate.main(["--model", summary["export"], "--test-file", settings["tasks_file"]]) == 2
        assert "--head NAME" in capsys.readouterr().err
    else:
        heads = {name: (settings, reported, [])}
    for head, (member, scores, head_flags) in heads.items():
        columns = {k: v for k, v in member.items() if k.endswith("_column")}
        flags = [f for k, v in columns.items() for f in (f"--{k.replace('_', '-')}", v)]
        out = tmp_path / f"{head}.json"
        code = evaluate.main([str(a) for a in ("--model", summary["export"], "--test-file", member["test_file"],
                                               "--output", out, *flags, *head_flags)])
        assert code == 0, capsys.readouterr().err[-3000:]
        metrics = json.loads(out.read_text())
        # What the run reports is what it ships: its metrics.json's test scores are the export's, as evaluate finds.
        assert set(scores) <= set(metrics), (sorted(scores), sorted(metrics))
        assert _same({k: metrics[k] for k in scores}, scores), (name, head, scores, metrics)


def _same(a, b, tol: float = 0.0) -> bool:
    """Equal JSON values, NaN equal to NaN (an undefined score of a tiny model); floats within `tol` (two
    signatures' float arithmetic)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=tol) or (math.isnan(a) and math.isnan(b))
    return a == b
