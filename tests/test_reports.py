"""tfbert.metrics.classification: metrics against hand-computed values, plots, atomic JSON."""
import json
import math

import pytest

from tfbert import files
from tfbert.files import write_json
from tfbert.metrics.classification import classification_metrics, format_report
from tfbert.metrics.plots import plot_confusion_matrix, plot_history

LABELS = ["a", "b", "c"]
# true a a a b b c / predicted a a b b c c:
#   a: TP 2, FP 0, FN 1 -> P 1,   R 2/3, F1 0.8
#   b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 0.5
#   c: TP 1, FP 1, FN 0 -> P 1/2, R 1,   F1 2/3
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metrics_match_hand_computed_values():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["labels"] == LABELS
    json.dumps(m)  # plain Python types only: goes straight into metrics.json


def test_class_absent_from_truth_and_predictions_does_not_lower_macro_f1():
    with_d = classification_metrics(Y_TRUE, Y_PRED, LABELS + ["d"])
    assert with_d["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert with_d["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert with_d["confusion_matrix"][3] == [0, 0, 0, 0]
    # A class that is predicted but never true does count (its F1 is a real 0).
    m = classification_metrics([0, 0], [0, 1], ["x", "y"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


@pytest.mark.parametrize("y_true, y_pred, match", [
    ([0, 1], [0], "2 items"),
    ([], [], "no examples"),
    ([0, 3], [0, 1], r"outside 0\.\.2"),
    ([0.0, 1.0], [0, 1], "integer label ids"),
])
def test_metrics_reject_bad_input(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, LABELS)


def test_format_report_shows_summary_classes_and_matrix():
    text = format_report(classification_metrics(Y_TRUE, Y_PRED, LABELS))
    lines = text.splitlines()
    assert lines[0] == "n=6  accuracy=0.6667  macro_f1=0.6556  weighted_f1=0.6778"
    row_a = next(line for line in lines if line.startswith("a ") and "1.0000" in line)
    assert row_a.split() == ["a", "1.0000", "0.6667", "0.8000", "3"]
    i = lines.index("confusion matrix (rows: true, columns: predicted)")
    assert [line.split() for line in lines[i + 1:i + 5]] == [["a", "b", "c"], ["a", "2", "1", "0"],
                                                             ["b", "0", "1", "1"], ["c", "0", "0", "1"]]


def test_plot_confusion_matrix_writes_png(tmp_path):
    cm = classification_metrics(Y_TRUE, Y_PRED, LABELS)["confusion_matrix"]
    out = plot_confusion_matrix(cm, LABELS, tmp_path / "sub" / "cm.png")
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion_matrix(cm, LABELS[:2], tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_plot_history_writes_png_with_one_or_two_panels(tmp_path):
    history = {"loss": [0.9, 0.6, 0.5], "val_loss": [1.0, 0.7, 0.65], "accuracy": [0.5, 0.7, 0.8],
               "val_accuracy": [0.45, 0.6, 0.7], "val_macro_f1": [0.4, 0.55, 0.66]}
    two = plot_history(history, tmp_path / "history.png").read_bytes()
    one = plot_history({"loss": [1.0, 0.5]}, tmp_path / "loss.png").read_bytes()
    assert two.startswith(PNG_MAGIC) and one.startswith(PNG_MAGIC)
    # Two panels side by side: about twice as wide as the single loss panel (PNG width at bytes 16..20).
    width = lambda png: int.from_bytes(png[16:20], "big")  # noqa: E731
    assert width(two) > 1.6 * width(one)
    with pytest.raises(ValueError, match="no values"):
        plot_history({"loss": []}, tmp_path / "empty.png")


def test_write_json_roundtrip_numpy_and_nan(tmp_path):
    import numpy as np

    path = write_json(tmp_path / "deep" / "m.json", {"acc": np.float32(0.5), "n": np.int64(3), "bad": math.nan,
                                                     "arr": np.arange(2), "label": "négatif"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"acc": 0.5, "n": 3, "bad": None, "arr": [0, 1],
                                                            "label": "négatif"}
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # no temp file left behind


def test_write_json_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    write_json(path, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
