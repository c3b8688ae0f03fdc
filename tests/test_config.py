"""The typed run configuration: one source for the CLI parser, fine_tune(**settings) and --config files."""
import dataclasses
import json
import re
import subprocess
import sys

import pytest

from tfbert.config import ConfigError, RunConfig
from tfbert.tasks import TASKS
from tfbert.train import build_parser, parse_config


def test_every_field_is_a_flag_and_every_flag_a_field():
    flags = {s for a in build_parser()._actions for s in a.option_strings} - {"-h", "--help", "--config"}
    flags = {f for f in flags if not f.startswith("--no-")}
    options = {f.name for task in TASKS.values() if task.options for f in dataclasses.fields(task.options)}
    assert options and flags == {"--" + name.replace("_", "-") for name in [*RunConfig.names(), *options]}


def test_parsed_defaults_equal_the_dataclass_defaults():
    assert parse_config([]) == RunConfig()
    assert parse_config(["--epochs", "3", "--no-freeze-word-embeddings"]) == RunConfig(epochs=3,
                                                                                        freeze_word_embeddings=False)


def test_config_file_is_read_and_flags_given_beside_it_win(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"task": "ner", "epochs": 4, "learning_rate": 1e-3, "model_name": "x"}))
    config = parse_config(["--config", str(path), "--epochs", "7"])
    assert (config.task, config.epochs, config.learning_rate, config.model_name) == ("ner", 7, 1e-3, "x")
    # A run folder's config.json is RunConfig.to_dict(): it reads back to the same settings.
    full = RunConfig(task="classify", train_file="a.csv", epochs=2).with_task_defaults(TASKS["classify"])
    path.write_text(json.dumps(full.to_dict()))
    assert parse_config(["--config", str(path)]) == full


@pytest.mark.parametrize("content, message", [
    ('{"epochs": 2, "epoch": 3}', "unknown settings epoch \\(did you mean 'epochs'\\?\\)"),
    ('{"epochs": "two"}', "epochs = 'two' is not a valid int"),
    ('{"epochs": 2,}', r"not valid JSON \(line 1, column"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_config_files_name_the_file_and_the_setting(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as e:
        parse_config(["--config", str(path)])
    assert str(path) in str(e.value)


def test_a_folder_as_config_and_a_file_as_output_dir_are_named_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=f"--config {re.escape(str(tmp_path))}: is a directory"):
        parse_config(["--config", str(tmp_path)])
    (tmp_path / "taken").write_text("a file")
    for out in (tmp_path / "taken", tmp_path / "taken" / "models"):
        with pytest.raises(ConfigError, match=f"--output-dir {re.escape(str(out))}: .*taken is a file, not a folder"):
            parse_config(["--output-dir", str(out)]).with_task_defaults(TASKS["sentiment"]).check()  # fit's first step
    # Not there yet: made when the run starts.
    parse_config(["--output-dir", str(tmp_path / "new" / "models")]).with_task_defaults(TASKS["sentiment"]).check()


def test_checks_name_the_flag():
    base = RunConfig().with_task_defaults(TASKS["sentiment"])
    for change, message in [({"patience": 0}, "--patience"), ({"weight_decay": -1.0}, "--weight-decay"),
                            ({"options": {**base.options, "pooling": "max"}}, "--pooling must be one of")]:
        with pytest.raises(ConfigError, match=message):
            dataclasses.replace(base, **change).check()
    base.check()


def test_fine_tune_refuses_unknown_settings():
    from tfbert.train import fine_tune
    with pytest.raises(TypeError, match="epoch \\(did you mean 'epochs'\\?\\)"):
        fine_tune(epoch=3)
    with pytest.raises(TypeError, match="unknown settings zzz;"):  # nothing close: no suggestion
        fine_tune(zzz=3)


def test_a_command_line_mistake_is_two_lines_with_the_closest_name(capsys):
    from tfbert.tasks import create
    with pytest.raises(SystemExit) as e:
        parse_config(["--task", "sentimnt"])
    err = capsys.readouterr().err.splitlines()
    assert e.value.code == 2 and len(err) == 2 and "(did you mean 'sentiment'?)" in err[0], err
    with pytest.raises(SystemExit):
        parse_config(["--patiense", "2"])
    assert "unrecognized arguments: --patiense 2 (did you mean '--patience'?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an abbreviation is a mistake too, not a silent --epochs
        parse_config(["--epoch", "3"])
    assert "unrecognized arguments: --epoch 3 (did you mean '--epochs'?)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown task 'nerr' \\(did you mean 'ner'\\?\\)"):
        create("nerr")  # a --config file's task


# Runs tfbert.train's main in a fresh interpreter and reports whether TensorFlow was imported by the time it ended.
_LOADED_TF = """
import runpy, sys
sys.argv = ["tfbert.train", *sys.argv[1:]]
try:
    runpy.run_module("tfbert.train", run_name="__main__")
finally:
    print("tensorflow loaded:", "tensorflow" in sys.modules, file=sys.stderr)
"""


def test_setting_and_data_errors_come_before_tensorflow_loads(tmp_path):
    """A mistyped task or a file without the label column is reported from the task catalog and the data loader
    alone (tfbert.tasks.catalog): TensorFlow (7-12 s to load) is never imported."""
    (tmp_path / "t.csv").write_text("text,lable\nhi,a\n")
    (tmp_path / "tasks.json").write_text(json.dumps([{"task": "sentiment"}, {"task": "classify", "train_file":
                                                                            str(tmp_path / "t.csv")}]))
    for args, error in ((["--task", "sentimnt"], "invalid choice: 'sentimnt' (choose from 'classify', 'multilabel', "
                                                 "'multitask', 'ner', 'qa', 'regression', 'sentiment') (did you mean "
                                                 "'sentiment'?)"),
                        (["--task", "classify", "--train-file", str(tmp_path / "t.csv")],
                         "no column 'label' (did you mean 'lable'?) (--label-column)"),
                        (["--task", "multitask", "--tasks-file", str(tmp_path / "tasks.json")],
                         "no column 'label' (did you mean 'lable'?)")):
        done = subprocess.run([sys.executable, "-c", _LOADED_TF, *args], capture_output=True, text=True)
        assert done.returncode == 2 and error in done.stderr, done.stderr
        assert done.stderr.splitlines()[-1] == "tensorflow loaded: False", done.stderr


def test_a_command_line_error_is_not_preceded_by_tensorflow_start_up_lines(tmp_path):
    # Starting TensorFlow prints absl lines (oneDNN, CUDA stubs, CPU features) on fd 2 before its logging is set up;
    # without tfbert.tf_logs the error below (an encoder found missing after TensorFlow loaded) comes after 4-6 of
    # them. --debug keeps them.
    import os
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")}
    data = tmp_path / "t.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(40)))
    cmd = [sys.executable, "-c", _LOADED_TF, "--task", "classify", "--train-file", str(data), "--encoder",
           str(tmp_path / "no-such-encoder"), "--output-dir", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and lines[-1] == "tensorflow loaded: True", done.stderr
    assert lines[-2].startswith("error: ") and "no-such-encoder" in lines[-2], done.stderr
    assert not any("port.cc" in line or "cpu_feature_guard" in line or "absl" in line for line in lines), lines
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, env=env)
    assert "port.cc" in debug.stderr or "cpu_feature_guard" in debug.stderr, debug.stderr


def test_cli_reports_a_bad_config_file_in_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"batch_size": 8, "bogus": 1}')
    r = subprocess.run([sys.executable, "-m", "tfbert.train", "--config", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and "error: --config" in r.stderr and "bogus" in r.stderr and "Traceback" not in r.stderr


def test_task_options_are_flags_read_as_attributes_and_dropped_for_other_tasks(tmp_path):
    config = parse_config(["--task", "classify", "--pooling", "mean"])
    assert config.options == {"pooling": "mean"} and config.pooling == "mean"
    filled = config.with_task_defaults(TASKS["classify"])
    assert filled.pooling == "mean" and filled.class_weights == "auto"  # the option's own default
    assert filled.to_dict()["pooling"] == "mean" and "options" not in filled.to_dict()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(filled.to_dict()))
    assert parse_config(["--config", str(path)]) == filled  # a run folder's config.json round-trips, options too
    logs = []
    ner = parse_config(["--task", "ner", "--pooling", "cls"]).with_task_defaults(TASKS["ner"], log=logs.append)
    assert ner.options == {} and logs == ["warning: --pooling does not apply to --task ner; ignored"]
    with pytest.raises(AttributeError, match="pooling"):
        ner.pooling
    text = " ".join(build_parser().format_help().split())
    # --pooling and --tflite are flags shared by every task that has them: one group named after all of them.
    assert re.search(r"options of --task sentiment and classify and multilabel and regression: --tflite .{0,300}"
                     r"--pooling \{pooled,cls,mean\}", text)


@pytest.mark.parametrize("module", ["train", "predict", "evaluate", "embed", "tune", "pretrain", "encoders.convert",
                                    "encoders.registry"])
def test_every_command_answers_help(module, capsys):
    import importlib
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"tfbert.{module}").main(["--help"])
    assert e.value.code == 0 and "usage: python -m tfbert." in capsys.readouterr().out


def test_the_registry_command_reports_an_unknown_encoder_in_one_line(capsys):
    from tfbert.encoders.registry import main
    assert main(["no-such-encoder"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown encoder 'no-such-encoder'") and len(err.splitlines()) == 1
