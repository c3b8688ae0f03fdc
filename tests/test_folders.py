"""Folder data (--train-dir: one sub-folder of .txt files per class, the TF tutorial's layout) and several text
columns joined into one text (--text-column title,body)."""
import json
from pathlib import Path

import pandas as pd
import pytest

from tfbert.data.classification import load_dataset
from tfbert.data.folders import read_folder
from tfbert.data.regression import load_scored
from tfbert.data.tables import TEXT_JOINER, DataError
from tfbert.train import build_parser


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def class_folders(root: Path, per_class: dict[str, int]) -> Path:
    """root/<class>/<i>.txt with distinct short texts."""
    for label, n in per_class.items():
        for i in range(n):
            write(root / label / f"{i}.txt", f"{label} example number {i}")
    return root


def test_reads_the_tutorial_layout_as_keras_does(tmp_path):
    import tf_keras as keras

    root = tmp_path / "train"
    write(root / "neg" / "1.txt", "a bad film\n\nreally")
    write(root / "neg" / "nested" / "2.TXT", "boring")  # sub-folders of a class and any case of .txt count
    write(root / "pos" / "1.txt", "great")
    write(root / "pos" / "2.txt", b"caf\xe9 good")  # not UTF-8: replaced
    write(root / "urls_pos.txt", "http://x")  # outside the class folders (the IMDB archive has these): ignored
    # Ignored by tfbert, unlike Keras: hidden names and empty files.
    write(root / "pos" / ".hidden.txt", "hidden")
    write(root / "pos" / ".ipynb_checkpoints" / "1-checkpoint.txt", "stale copy")
    write(root / ".cache" / "x.txt", "not a class")
    write(root / "pos" / "empty.txt", "  \n")

    df = read_folder(root)
    ours = sorted(zip(df["text"], df["label"]))
    assert ours == sorted([("a bad film\n\nreally", "neg"), ("boring", "neg"), ("great", "pos"),
                           ("caf\ufffd good", "pos")])
    notes = " ".join(df.attrs["notes"])
    assert "4 texts in 2 class folders (neg, pos)" in notes and "skipped 1 empty" in notes
    assert "1 files held bytes that are not valid UTF-8" in notes and "urls_pos.txt" in notes

    ds = keras.utils.text_dataset_from_directory(str(root), batch_size=None, shuffle=False)
    theirs = [(t.numpy().decode("utf-8", "replace"), ds.class_names[int(y)]) for t, y in ds]
    ignored = {("hidden", "pos"), ("stale copy", "pos"), ("  \n", "pos")}
    assert ds.class_names == ["neg", "pos"] and sorted(set(theirs) - ignored) == ours


@pytest.mark.parametrize("make, message", [
    (lambda r: (class_folders(r, {"neg": 2}), (r / "pos").mkdir()), "class folder 'pos' holds no .txt files"),
    (lambda r: (class_folders(r, {"neg": 2}), write(r / "pos" / "a.txt", "")), "holds only empty .txt files"),
    (lambda r: (class_folders(r, {"neg": 2, "pos": 2}), write(r / "pos" / "notes.md", "x")),
     "notes.md: not a .txt file"),
    (lambda r: class_folders(r, {"neg": 3}), "at least 2; found only 'neg'"),
    (lambda r: None, "folder not found"),
    (lambda r: write(r, "a file"), "is not a folder"),
])
def test_folder_problems_name_the_path(tmp_path, make, message):
    root = tmp_path / "train"
    make(root)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(train_dir=root)
    assert str(root) in str(e.value)


def test_load_dataset_from_folders_keeps_splits_and_labels(tmp_path):
    train = class_folders(tmp_path / "train", {"neg": 20, "pos": 20})
    test = class_folders(tmp_path / "test", {"pos": 3})  # a test folder may lack classes
    ds = load_dataset(train_dir=train, test_dir=test, seed=0)
    assert ds.labels == ["neg", "pos"] and not ds.has_pairs
    assert len(ds.test) == 3 and set(ds.test["label_id"]) == {1}
    assert len(ds.valid) == 4 and ds.valid["label"].value_counts().to_dict() == {"neg": 2, "pos": 2}  # stratified
    assert len(ds.train) == 36 and all(t.startswith(y) for t, y in zip(ds.train["text"], ds.train["label"]))
    assert any(str(train) in note for note in ds.notes)
    # A test table beside a train folder reads its own columns.
    table = tmp_path / "test.csv"
    pd.DataFrame({"review": ["neg example number 99"], "stars": ["neg"]}).to_csv(table, index=False)
    assert load_dataset(train_dir=train, test_file=table, text_column="review", label_column="stars").test[
        "text"].tolist() == ["neg example number 99"]


@pytest.mark.parametrize("kwargs, message", [
    ({"test_dir": "T"}, "class folders not in the train data"),
    ({"train_file": "x.csv"}, "--train-file x.csv and --train-dir .* were both given"),
    ({"text_b_column": "b"}, "--text-b-column 'b': folder data"),
    ({"valid_dir": "T", "train_dir": None}, "without train_file or train_dir"),
])
def test_folder_settings_that_cannot_work(tmp_path, kwargs, message):
    class_folders(tmp_path / "T", {"neg": 1, "other": 1})
    settings = {"train_dir": class_folders(tmp_path / "train", {"neg": 4, "pos": 4}), **kwargs}
    settings = {k: tmp_path / v if k.endswith("_dir") and v else v for k, v in settings.items()}
    with pytest.raises(DataError, match=message):
        load_dataset(**settings)


def test_tasks_without_folder_data_refuse_it_on_the_command_line(tmp_path, capsys):
    from tfbert.train import main
    for task in ("ner", "regression", "multilabel"):
        assert main(["--task", task, "--train-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "error: --train-dir: folder data" in err and f"--task {task} reads files" in err
    assert main(["--task", "classify", "--epochs", "1"]) == 2
    assert "needs --train-file or --train-dir" in capsys.readouterr().err
    assert main(["--task", "classify", "--train-file", "a.csv", "--train-dir", str(tmp_path)]) == 2
    assert "--train-file a.csv and --train-dir" in capsys.readouterr().err


def test_several_text_columns_are_joined(tmp_path):
    path = tmp_path / "news.csv"
    pd.DataFrame({"title": ["Rates rise", "", "Storm"], "body": ["Banks react.", "Only a body.", ""],
                  "topic": ["economy", "economy", "weather"], "score": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    ds = load_dataset(path, text_column="title,body", label_column="topic", valid_fraction=0, test_fraction=0)
    assert sorted(ds.train["text"]) == sorted([f"Rates rise{TEXT_JOINER}Banks react.", "Only a body.", "Storm"])
    assert load_scored(path, text_column="title, body", label_column="score", valid_fraction=0,
                       test_fraction=0).train["text"].tolist()[0].startswith("Rates rise | ")
    with pytest.raises(DataError, match=r"news.csv: no column 'bdy' \(did you mean 'body'\?\) \(--text-column\). Columns in the file: 'title'"):
        load_dataset(path, text_column="title,bdy", label_column="topic")
    assert "joined with ' | '" in " ".join(build_parser().format_help().split())


def test_the_tutorial_layout_trains_end_to_end(folder_trained, capsys):
    """A tiny tutorial-style folder (made by the fixture) trains, tests on its test folder and exports the folder
    names as labels."""
    from tfbert.predict import main as predict
    root, summary = folder_trained
    export = Path(summary["export"])
    assert json.loads((export / "assets.extra" / "tfbert.json").read_text())["labels"] == ["neg", "pos"]
    assert sum(map(sum, summary["test"]["confusion_matrix"])) == 8  # the test folder's 8 files
    assert any("aclImdb/train: 32 texts in 2 class folders" in n for n in summary["data_notes"])

    # Prediction on a table joins its text columns the same way as training.
    table = root / "new.csv"
    pd.DataFrame({"title": ["Superb"], "body": ["a lovely film"]}).to_csv(table, index=False)
    capsys.readouterr()
    assert predict(["--model", str(export), "--input-file", str(table), "--text-column", "title,body"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["text"] == "Superb | a lovely film" and line["label"] in ("neg", "pos")
