"""Every CSV/TSV tfbert writes (tfbert.files.write_table: predict --output, the benchmark's splits) reads back to the
rows it was written from, whatever the texts hold: pandas' default quoting left a bare \\r unquoted, which split rows."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tfbert.data.tables import read_table
from tfbert.files import write_table

REPO = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "carriage\rreturn", "windows\r\nline end", "new\nline", "\r", "\r\n", "\n", "ends with\r", "\rstarts with",
    'say "hi"', '"', '""', "tab\there", "\t", "comma, here", ",", "semi;colon|pipe", "  leading and trailing  ", " ",
    "", "NA", "None", "null", "NaN", "nan", "#not a comment", "007", "1e5", "-0", "TRUE", "unicode: naïve café 東京 😀",
    "line\u2028separator and next\u0085line", "\ufeffbom inside", "back\\slash", "'single'",
]


def _frame():
    return pd.DataFrame({"id": [str(i) for i in range(len(TEXTS))], "text": TEXTS,
                         "text_b": list(reversed(TEXTS)), "empty": [""] * len(TEXTS)})


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".tab"])
def test_write_table_round_trip(tmp_path, ext):
    df = _frame()
    path = write_table(tmp_path / f"t{ext}", df)
    back = read_table(path)
    assert list(back.columns) == list(df.columns)
    assert len(back) == len(df), f"{len(back)} rows read back from {len(df)} written"
    assert back.to_dict("records") == df.to_dict("records")
    with open(path, newline="", encoding="utf-8") as f:  # and Python's csv module, as the benchmark's infer phase reads
        rows = list(csv.DictReader(f, delimiter="," if ext == ".csv" else "\t"))
    assert rows == df.to_dict("records")


def test_write_table_single_empty_column_and_numbers(tmp_path):
    # A row of one empty string must not become a blank line (readers skip those); numbers read back as written.
    df = pd.DataFrame({"text": ["", "a\rb", ""]})
    assert read_table(write_table(tmp_path / "e.csv", df)).to_dict("records") == df.to_dict("records")
    nums = pd.DataFrame({"text": ["x\ry", "z"], "n": [7, 8], "p": [0.25, float("nan")]})
    back = read_table(write_table(tmp_path / "n.tsv", nums))
    assert back.to_dict("records") == [{"text": "x\ry", "n": "7", "p": "0.25"}, {"text": "z", "n": "8", "p": ""}]


def test_write_table_rejects_other_extensions(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv, \.tsv, \.tab"):
        write_table(tmp_path / "t.jsonl", _frame())
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory) -> Path:
    """A minimal exported classifier (the contract tests/test_serving_cli.py's fakes follow): "good" -> positive,
    "bad" -> negative, else neutral."""
    import tensorflow as tf

    table = tf.constant([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], tf.float32)

    def serve(text):
        low = tf.strings.lower(text)
        ids = tf.where(tf.strings.regex_full_match(low, "(?s).*good.*"), tf.constant(2, tf.int64),
                       tf.where(tf.strings.regex_full_match(low, "(?s).*bad.*"), tf.constant(0, tf.int64),
                                tf.constant(1, tf.int64)))
        return {"probabilities": tf.gather(table, ids), "label": tf.gather(tf.constant(LABELS), ids), "label_id": ids}

    directory = tmp_path_factory.mktemp("saved_models") / "fake" / "1"
    m = tf.Module()
    m.serve = tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    tf.saved_model.save(m, str(directory), signatures={"serving_default": m.serve})
    (directory / "assets").mkdir(exist_ok=True)
    (directory / "assets" / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return directory.parent


def _input_rows():
    texts = [t + (" good" if i % 3 == 0 else " bad" if i % 3 == 1 else "") for i, t in enumerate(TEXTS)]
    return [{"id": str(i), "text": t} for i, t in enumerate(texts)]


def _write_input(path: Path, rows, delimiter=","):
    # Written with Python's csv module, not write_table, so the input does not depend on the code under test.
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text"], delimiter=delimiter, quoting=csv.QUOTE_ALL)
        w.writeheader()
        w.writerows(rows)


def _check_output(path: Path, rows):
    back = read_table(path)
    assert len(back) == len(rows), f"{len(back)} rows read back from {path.name}, {len(rows)} predicted"
    assert back["id"].tolist() == [r["id"] for r in rows]
    assert back["text"].tolist() == [r["text"] for r in rows]
    expected = ["positive" if i % 3 == 0 else "negative" if i % 3 == 1 else "neutral" for i in range(len(rows))]
    assert back["label"].tolist() == expected
    assert list(back.columns) == ["id", "text", "label", "p_negative", "p_neutral", "p_positive"]


def test_predict_cli_csv_output_reads_back(fake_model, tmp_path):
    rows = _input_rows()
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_input(src, rows)
    assert len(read_table(src)) == len(rows)
    r = subprocess.run([sys.executable, "-m", "tfbert.predict", "--model", str(fake_model), "--input-file", str(src),
                        "--output", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert f"wrote {len(rows)} rows" in r.stderr
    _check_output(out, rows)


def test_predict_tsv_output_reads_back(fake_model, tmp_path, capsys):
    from tfbert import predict

    rows = _input_rows()
    src, out = tmp_path / "in.tsv", tmp_path / "out.tsv"
    _write_input(src, rows, delimiter="\t")
    assert predict.main(["--model", str(fake_model), "--input-file", str(src), "--output", str(out)]) == 0
    _check_output(out, rows)
