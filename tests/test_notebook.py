"""The notebooks run top to bottom (tiny encoder, small data), use only the public API and are committed without
outputs."""
import ast
import json
import sys
from pathlib import Path

import nbformat
import pytest

import tfbert

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK = NOTEBOOKS / "finetune_sentiment.ipynb"
SIMILARITY = NOTEBOOKS / "similarity_regression.ipynb"
# The public names each notebook must show (beyond that, any name in tfbert.__all__).
SHOWS = {NOTEBOOK: {"load_dataset", "resolve_encoder", "TextPipeline", "build_classifier", "export_classifier", "load"},
         SIMILARITY: {"export_embeddings", "fine_tune", "load", "load_tweets"}}
REPORT = "TFBERT_NOTEBOOK_TEST "


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


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


def test_notebook_runs_top_to_bottom(tiny_pair, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    out = tmp_path / "out"
    # The kernel inherits this environment: the notebook's settings cell reads these.
    monkeypatch.setenv("TFBERT_NB_ENCODER", str(tiny_pair))
    monkeypatch.setenv("TFBERT_NB_MAX_TRAIN", "200")
    monkeypatch.setenv("TFBERT_NB_MAX_EVAL", "200")
    monkeypatch.setenv("TFBERT_NB_EPOCHS", "1")
    monkeypatch.setenv("TFBERT_NB_OUTPUT_DIR", str(out))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import json, sys\nprint({REPORT!r} + json.dumps({{'executable': sys.executable, "
        f"'cwd': os.getcwd(), 'export': str(export_path.resolve())}}))"))
    client = NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=600,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error

    errors = [o for c in _code(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert all(c.execution_count for c in _code(nb)[:-1]), "not every cell ran"
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    report = json.loads(printed.split(REPORT, 1)[1])
    assert report["executable"] == sys.executable and sys.prefix in report["executable"]
    assert Path(report["cwd"]) == NOTEBOOKS

    export = Path(report["export"])
    assert export == (out / "sentiment" / "1").resolve()
    assert (export / "saved_model.pb").is_file()
    assert (export / "assets" / "labels.txt").read_text().split() == ["negative", "neutral", "positive"]
    assert (out / "figures" / "confusion_matrix.png").is_file() and (out / "figures" / "training_curves.png").is_file()
    # The plots reached the notebook as images (live curves, class balance, lengths, saved PNGs).
    images = sum("image/png" in o.get("data", {}) for c in _code(nb) for o in c.outputs)
    assert images >= 5, images
    assert len(nb.cells) == n_cells + 1


def test_similarity_notebook_runs_top_to_bottom(tiny_pair, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    out = tmp_path / "out"
    for key, value in {"ENCODER": str(tiny_pair), "MAX_TRAIN": "120", "EPOCHS": "1", "MIN_STEPS": "8", "SEARCH_POOL": "200",
                       "OUTPUT_DIR": str(out)}.items():
        monkeypatch.setenv(f"TFBERT_NB_{key}", value)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = nbformat.read(SIMILARITY, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import json\nprint({REPORT!r} + json.dumps({{'export': summary['export'], 'tuned': str(tuned.path), "
        f"'shape': list(vectors.shape)}}))"))
    NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=600,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()

    assert not [o for c in _code(nb) for o in c.outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    report = json.loads(printed.split(REPORT, 1)[1])
    assert report["shape"] == [200, 32]
    assert Path(report["export"]).resolve() == (out / "regression" / "1").resolve()
    assert Path(report["tuned"]).resolve() == (out / "embedding-tuned" / "1").resolve()
    assert (out / "regression" / "runs" / "1" / "test_scatter.png").is_file()
    # The subsample trains the few epochs asked for: 120 rows at batch 32 reach 8 steps in 2 epochs (the default
    # --min-steps 300 made it 75, most of this test's time).
    run = json.loads((out / "regression" / "runs" / "1" / "metrics.json").read_text())
    assert run["epochs_run"] <= 2
    assert sum("image/png" in o.get("data", {}) for c in _code(nb) for o in c.outputs) >= 2
