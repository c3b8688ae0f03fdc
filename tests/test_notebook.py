"""The notebooks run top to bottom (tiny encoder, small data), use only the public API and are committed without
outputs."""
import ast
import json
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import nbformat
import numpy as np
import pytest

import tfbert

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK = NOTEBOOKS / "finetune_sentiment.ipynb"
SIMILARITY = NOTEBOOKS / "similarity_regression.ipynb"
NER = NOTEBOOKS / "ner_entities.ipynb"
QA = NOTEBOOKS / "question_answering.ipynb"
MULTILABEL = NOTEBOOKS / "multilabel_tags.ipynb"
# The public names each notebook must show (beyond that, any name in tfbert.__all__).
SHOWS = {NOTEBOOK: {"load_dataset", "resolve_encoder", "TextPipeline", "build_classifier", "export_classifier", "load",
                    "RunConfig", "TASKS"},
         SIMILARITY: {"export_embeddings", "fine_tune", "load", "load_tweets"},
         NER: {"RunConfig", "TASKS", "fine_tune", "load", "load_ner_dataset", "entity_metrics", "plot_confusion_matrix"},
         QA: {"RunConfig", "TASKS", "fine_tune", "load", "load_qa_dataset"},
         MULTILABEL: {"RunConfig", "TASKS", "fine_tune", "load"}}
REPORT = "TFBERT_NOTEBOOK_TEST "
# The built-in Twitter NER corpus' entity types: NER's, multi-label's labels and QA's question types.
TYPES = ["company", "facility", "geo-loc", "movie", "musicartist", "other", "person", "product", "sportsteam",
         "tvshow"]


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in _code(nb) for o in c.outputs)


@pytest.mark.parametrize("notebook", sorted(SHOWS), ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{notebook.name}: cells {dirty} carry outputs or execution counts; clear all outputs "
                       f"before committing (Jupyter: Edit > Clear Outputs of All Cells)")
    assert nb.cells[0].cell_type == "markdown" and "no outputs" in nb.cells[0].source


@pytest.mark.parametrize("notebook", sorted(SHOWS), ids=lambda p: p.stem)
def test_notebook_uses_only_the_public_api(notebook):
    """`tfbert.<name>` for names in tfbert.__all__ only, and no `from tfbert.<module> import ...`."""
    nb = nbformat.read(notebook, as_version=4)
    used = set()
    for cell in _code(nb):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not [n for n in names if n.startswith("tfbert.")], f"private import in: {cell.source[:80]}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "tfbert":
                used.add(node.attr)
    assert used - {"__version__"} <= set(tfbert.__all__), sorted(used - set(tfbert.__all__) - {"__version__"})
    assert SHOWS[notebook] <= used


def _kernel_manager(tmp_path):
    """A kernel that runs this very interpreter (the venv's python), whatever kernelspecs the machine has.

    The stock "python3" spec says `python -m ipykernel_launcher`; jupyter_client swaps a bare `python` for
    sys.executable, but a user-level spec (~/.local/share/jupyter/kernels/python3) or one with an absolute path
    would win over the venv's own and could start another interpreter without tfbert. So we write a private
    kernelspec naming sys.executable and give the KernelManager a spec manager that looks only there: no
    install step, no JUPYTER_PATH juggling, nothing left behind.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "tfbert-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tfbert test", "language": "python"}))
    return KernelManager(kernel_name="tfbert-test",
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))


def _exported(out: Path, report: dict, name: str) -> Path:
    """The export the notebook reported: the first version under OUTPUT_DIR/<name>, a SavedModel of its task."""
    export = Path(report["export"]).resolve()
    assert export == (out / name / "1").resolve()
    assert (export / "saved_model.pb").is_file()
    return export


# --------------------------------------------------------------------------- what each notebook's run must show


def _check_sentiment(report, out, nb):
    export = _exported(out, report, "sentiment")
    assert (export / "assets" / "labels.txt").read_text().split() == ["negative", "neutral", "positive"]
    assert (out / "figures" / "confusion_matrix.png").is_file() and (out / "figures" / "training_curves.png").is_file()
    # The plots reached the notebook as images (live curves, class balance, lengths, saved PNGs).
    assert _images(nb) >= 5
    # The CLI's choices: frozen word embeddings; --min-steps (200 rows at batch 32 are 7 steps an epoch, so 14 steps
    # take 2 epochs where --epochs says 1); the best epoch's weights, from the checkpoint.
    assert report["frozen"] and not report["trainable_word_embeddings"]
    assert report["epochs"] == 2 and 1 <= report["epochs_run"] <= 2
    assert (out / "checkpoints" / "sentiment" / "best.index").is_file()
    # The histogram counts the uncut texts: at --max-seq-length 32 (a window of 30) some tweets are longer, which
    # texts already cut to the window could never show; the truncation report counts the same ones.
    assert report["window"] == 30 and report["longest"] > 30
    assert report["rows_cut"] == report["longer"] > 0


def _check_similarity(report, out, nb):
    assert report["shape"] == [200, 32]
    assert Path(report["export"]).resolve() == (out / "regression" / "1").resolve()
    assert Path(report["tuned"]).resolve() == (out / "embedding-tuned" / "1").resolve()
    assert (out / "regression" / "runs" / "1" / "test_scatter.png").is_file()
    # The subsample trains the few epochs asked for: 120 rows at batch 32 reach 8 steps in 2 epochs (the default
    # --min-steps 300 made it 75, most of this test's time).
    run = json.loads((out / "regression" / "runs" / "1" / "metrics.json").read_text())
    assert run["epochs_run"] <= 2
    assert _images(nb) >= 2


def _check_ner(report, out, nb):
    export = _exported(out, report, "ner")
    assert (export / "assets" / "tags.txt").read_text().split() == ["O", *[f"{p}-{t}" for t in TYPES for p in "BI"]]
    assert report["task"] == "ner"
    # Entities with character offsets into the texts sent (the tiny random tagger's are noise, but it finds some).
    entities = [(report["texts"][i], e) for i, found in enumerate(report["found"]) for e in found]
    assert entities
    for text, e in entities:
        assert 0 <= e["start"] < e["end"] <= len(text) and text[e["start"]:e["end"]] == e["text"]
        assert e["type"] in TYPES and 0 < e["score"] <= 1
    # The run's metrics as the report cell reads them (seqeval per type, micro, macro), and the same figures when
    # the client scores the test split again.
    test = report["test"]
    assert {"sentences", "tokens", "token_accuracy", "micro", "macro", "per_type"} <= set(test)
    assert test["sentences"] == 239 and set(test["per_type"]) <= set(TYPES)
    assert {"precision", "recall", "f1", "support"} <= set(test["micro"])
    assert report["rescored_micro_f1"] == pytest.approx(test["micro"]["f1"])
    assert report["epochs_run"] <= 2  # 120 sentences: 4 steps an epoch, --min-steps 8
    assert (out / "ner" / "runs" / "1" / "training_curves.png").is_file()
    assert (out / "figures" / "ner_word_types.png").is_file()
    assert _images(nb) >= 3  # entities per type, training curves, word-type confusion


def _check_qa(report, out, nb):
    _exported(out, report, "qa")
    assert report["task"] == "qa" and report["no_answer"] is True
    # The no-answer threshold: tuned after training, in the export and in the test metrics alike.
    test = report["test"]
    assert report["metadata_threshold"] == pytest.approx(report["threshold"]) == pytest.approx(test["threshold"])
    assert {f"{split}{m}" for split in ("", "HasAns_", "NoAns_") for m in ("exact", "f1", "total")} <= set(test)
    assert (test["total"], test["HasAns_total"], test["NoAns_total"]) == (217, 118, 99)
    assert report["file_f1"] == pytest.approx(test["f1"])
    # Answers with character offsets into their context, or the abstention ("" at -1; the tiny model mostly
    # abstains); the gold answers shown index their contexts too.
    assert len(report["answers"]) == len(report["contexts"]) == 8
    for context, a in zip(report["contexts"], report["answers"]):
        assert set(a) == {"answer", "start", "end", "score", "has_answer"} and 0 <= a["score"] <= 1
        if a["has_answer"]:
            assert 0 <= a["start"] < a["end"] <= len(context) and context[a["start"]:a["end"]] == a["answer"]
        else:
            assert (a["answer"], a["start"], a["end"]) == ("", -1, -1)
    assert report["gold"] and all(g["context"][g["start"]:g["end"]] == g["answer"] for g in report["gold"])
    assert len((out / "qa-data" / "test.jsonl").read_text(encoding="utf-8").splitlines()) == 217
    assert (out / "qa" / "runs" / "1" / "training_curves.png").is_file()
    assert _images(nb) >= 2  # questions by type, training curves


def _check_multilabel(report, out, nb):
    export = _exported(out, report, "multilabel")
    assert (export / "assets" / "labels.txt").read_text().split() == TYPES == report["labels"]
    assert report["task"] == "multilabel"
    # The per-label thresholds: tuned after training, in the export (client, asset file) as in the summary.
    thresholds = np.asarray(report["thresholds"], np.float32)
    assert thresholds.shape == (10,)
    assert np.allclose(thresholds, [report["summary_thresholds"][name] for name in TYPES])
    assert np.allclose(thresholds, np.loadtxt(export / "assets" / "thresholds.txt"))
    # The probabilities, and the predicted sets: exactly the labels at or above their threshold.
    probabilities = np.asarray(report["probabilities"], np.float32)
    assert probabilities.shape == (6, 10) and ((0 <= probabilities) & (probabilities <= 1)).all()
    assert report["sets"] == [[name for name, chosen in zip(TYPES, row) if chosen] for row in probabilities >= thresholds]
    test = report["test"]
    assert {"n", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "subset_accuracy", "per_label",
            "rows_without_label", "rows_predicted_without_label"} <= set(test)
    assert test["n"] == 239 and set(test["per_label"]) == set(TYPES)
    assert report["rescored_micro_f1"] == pytest.approx(test["micro_f1"]) == pytest.approx(report["tuned_micro_f1"])
    assert (out / "multilabel" / "runs" / "1" / "training_curves.png").is_file()
    assert _images(nb) >= 3  # label shares and set sizes, training curves, probabilities per label


class Run(NamedTuple):
    env: dict  # TFBERT_NB_<key> settings, beside ENCODER and OUTPUT_DIR
    report: str  # a dict expression over the notebook's variables, printed as JSON by a cell appended to it
    check: Callable  # check(report, out, nb)


# Small enough on the tiny encoder that each notebook runs in a minute or two: few rows, few epochs, a low
# --min-steps (its default of 300 would turn 120 rows into 75 epochs).
RUNS = {
    NOTEBOOK: Run({"MAX_TRAIN": "200", "MAX_EVAL": "200", "EPOCHS": "1", "MIN_STEPS": "14", "MAX_SEQ_LENGTH": "32"},
                  "{'export': str(export_path.resolve()), 'frozen': frozen, 'trainable_word_embeddings': "
                  "[w.name for w in model.trainable_weights if 'word_embeddings' in w.name], 'epochs': epochs, "
                  "'epochs_run': len(history.history['loss']), 'window': window, 'longest': int(lengths.max()), "
                  "'longer': int((lengths > window).sum()), 'rows_cut': cut['splits']['train']['rows_cut']}",
                  _check_sentiment),
    SIMILARITY: Run({"MAX_TRAIN": "120", "EPOCHS": "1", "MIN_STEPS": "8", "SEARCH_POOL": "200"},
                    "{'export': summary['export'], 'tuned': str(tuned.path), 'shape': list(vectors.shape)}",
                    _check_similarity),
    NER: Run({"MAX_TRAIN": "120", "EPOCHS": "1", "MIN_STEPS": "8"},
             "{'export': summary['export'], 'task': tagger.metadata['task'], 'texts': texts, 'found': found, "
             "'test': summary['test'], 'rescored_micro_f1': metrics['micro']['f1'], "
             "'epochs_run': summary['epochs_run']}",
             _check_ner),
    QA: Run({"MAX_TRAIN": "120", "EPOCHS": "1", "MIN_STEPS": "8"},
            "{'export': summary['export'], 'task': qa.metadata['task'], 'no_answer': qa.no_answer, "
            "'threshold': threshold, 'metadata_threshold': qa.metadata['threshold'], 'test': test, "
            "'contexts': contexts, 'answers': answers, 'gold': gold.head(6).to_dict('records'), "
            "'file_f1': file_metrics['f1']}",
            _check_qa),
    MULTILABEL: Run({"MAX_TRAIN": "120", "EPOCHS": "1", "MIN_STEPS": "8"},
                    "{'export': summary['export'], 'task': model.metadata['task'], 'labels': model.labels, "
                    "'thresholds': model.thresholds, 'summary_thresholds': summary['thresholds'], "
                    "'probabilities': probabilities.tolist(), 'sets': sets, 'test': test, "
                    "'rescored_micro_f1': metrics['micro_f1'], 'tuned_micro_f1': float(tuned_micro)}",
                    _check_multilabel),
}


def test_every_notebook_has_a_run():
    assert set(RUNS) == set(SHOWS) == set(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("notebook", sorted(RUNS), ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(notebook, tiny_pair, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    run, out = RUNS[notebook], tmp_path / "out"
    # The kernel inherits this environment: the notebook's settings cell reads these.
    for key, value in {"ENCODER": str(tiny_pair), "OUTPUT_DIR": str(out), **run.env}.items():
        monkeypatch.setenv(f"TFBERT_NB_{key}", value)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    nb = nbformat.read(notebook, as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import json as _json, os as _os, sys as _sys\n"
        f"print({REPORT!r} + _json.dumps({{'executable': _sys.executable, 'cwd': _os.getcwd(), **{run.report}}}))"))
    client = NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=600,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error

    errors = [o for c in _code(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert all(c.execution_count for c in _code(nb)[:-1]), "not every cell ran"
    assert len(nb.cells) == n_cells + 1
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    report = json.loads(printed.split(REPORT, 1)[1])
    assert report["executable"] == sys.executable and sys.prefix in report["executable"]
    assert Path(report["cwd"]) == NOTEBOOKS
    run.check(report, out, nb)
