"""The README's and the docs pages' examples match the code: REST requests/responses vs. a real export's signatures,
CLI flags (commands and flag tables) vs. parsers."""
import importlib
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = ROOT / "docs" / "pages"
# The README (the front page) and the documentation pages: where the examples are.
DOC_FILES = [README, *sorted(PAGES.rglob("*.md"))]
# Generated from the parsers themselves (tools/cli_reference.py; tests/test_docs.py keeps it current).
CLI_PAGE = PAGES / "reference" / "cli.md"
TRAINING_PAGE = PAGES / "reference" / "training.md"
PAIR_LABELS = ["contradiction", "entailment", "neutral"]


def _blocks(path: Path = README):
    """Fenced code blocks of one file in order: (language, body)."""
    return re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def _rest_examples_in(path: Path):
    """(request, response or None, model name) for every `curl -d '<json>' .../v1/models/<name>:predict` of a file.

    The response is the ```json block that directly follows the curl's block.
    """
    blocks = _blocks(path)
    found = []
    for i, (lang, body) in enumerate(blocks):
        for line in body.replace("\\\n", " ").splitlines():
            if not line.lstrip().startswith("curl") or ":predict" not in line:
                continue
            payload = re.search(r"-d\s+'(.*?)'", line)
            model = re.search(r"/v1/models/([\w.-]+)(?:/versions/\d+)?:predict", line)
            assert payload and model, f"unparsed curl line in {path.relative_to(ROOT)}: {line}"
            following = blocks[i + 1] if i + 1 < len(blocks) and blocks[i + 1][0] == "json" else None
            found.append((json.loads(payload.group(1)), json.loads(following[1]) if following else None,
                          model.group(1)))
    return found


def _rest_examples():
    """The REST examples of the README and every docs page, in that order (tests/test_qa.py checks the QA one)."""
    return [example for path in DOC_FILES for example in _rest_examples_in(path)]


@pytest.fixture(scope="module")
def pairs_export(tmp_path_factory, tiny_pair):
    """An (untrained) sentence-pair classifier exported by the real export code: it has serving_pairs."""
    import tfbert
    enc = tfbert.resolve_encoder(str(tiny_pair), log=lambda *_: None)
    model = tfbert.build_classifier(enc.encoder, len(PAIR_LABELS))
    return tfbert.export_classifier(model, enc.preprocess, PAIR_LABELS, tmp_path_factory.mktemp("pairs") / "nli",
                                    inputs=tfbert.InputSettings(64), has_pairs=True, log=lambda *_: None)


def _as_python(value):
    """A tensor row as TF Serving's JSON writes it: str for strings, int / float, lists for arrays."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_as_python(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _check_against_signature(request, response, export):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfbert.serving import read_labels

    name = request.get("signature_name", "serving_default")
    signatures = tf.saved_model.load(str(export)).signatures
    assert name in signatures, f"README uses signature {name!r}; the export has {sorted(signatures)}"
    sig = signatures[name]
    inputs = sig.structured_input_signature[1]
    assert set(request) <= {"signature_name", "instances"}, sorted(request)
    instances = request["instances"]
    assert instances
    if all(isinstance(x, str) for x in instances):  # row format, bare values: only for a single input
        assert len(inputs) == 1, f"{name} has inputs {sorted(inputs)}: instances must be objects naming them"
        columns = {next(iter(inputs)): instances}
    else:
        for x in instances:
            assert isinstance(x, dict) and set(x) == set(inputs), (x, sorted(inputs))
            assert all(isinstance(v, str) for v in x.values())
        columns = {k: [x[k] for x in instances] for k in inputs}
    assert all(spec.dtype == tf.string for spec in inputs.values())

    # Run the real signature on the README's request and compare the shape of its answer with the example.
    out = {k: v.numpy() for k, v in sig(**{k: tf.constant(v) for k, v in columns.items()}).items()}
    assert set(out) == set(sig.structured_outputs)
    if response is None:
        return
    assert list(response) == ["predictions"]
    predictions = response["predictions"]
    assert len(predictions) == len(instances)
    labels = read_labels(export)
    for i, example in enumerate(predictions):
        real = {k: _as_python(v[i]) for k, v in out.items()}
        assert set(example) == set(real), f"README response keys {sorted(example)} != outputs {sorted(real)}"
        for key, value in real.items():
            assert type(example[key]) is type(value), (key, example[key], value)
        assert len(example["probabilities"]) == len(real["probabilities"]) == len(labels)
        assert all(isinstance(p, float) for p in example["probabilities"])
        assert abs(sum(example["probabilities"]) - 1) < 1e-3
        assert example["label_id"] == int(np.argmax(example["probabilities"]))
        assert example["label"] == labels[example["label_id"]]


def test_rest_examples_match_the_exported_signatures(trained_export, pairs_export):
    examples = _rest_examples()
    # The QA example (model "qa") is checked against a QA export in tests/test_qa.py.
    by_signature = {}
    for req, resp, model in examples:
        if model != "qa":
            by_signature.setdefault(req.get("signature_name", "serving_default"), []).append((req, resp))
    assert set(by_signature) == {"serving_default", "serving_pairs"}, sorted(by_signature)
    # A quickstart may show a request alone; the serving guide shows each signature's response.
    assert all(any(resp is not None for _, resp in found) for found in by_signature.values()), \
        "each signature's curl example shows its response somewhere"
    # trained_export is the real training path's export of the built-in tweet labels (negative/neutral/positive).
    exports = {"serving_default": trained_export, "serving_pairs": pairs_export}
    for signature, found in by_signature.items():
        for req, resp in found:
            _check_against_signature(req, resp, exports[signature])


def test_docker_command_serves_the_model_the_requests_name():
    runs = 0
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for run in re.finditer(r"docker run .*?-v \"\$PWD/saved_models/([\w.-]+):/models/([\w.-]+)\" "
                               r"-e MODEL_NAME=([\w.-]+) tensorflow/serving:(\d+)\.(\d+)\.\d+", text):
            runs += 1
            assert run.group(1) == run.group(2) == run.group(3), (path.name, run.group(0))
            assert (int(run.group(4)), int(run.group(5))) >= (2, 20)
            # the first request on the page that starts the server names the model it serves
            assert _rest_examples_in(path)[0][2] == run.group(1), path.relative_to(ROOT)
    assert runs, "no docker run command for tensorflow/serving in the README or the docs"
    assert "docker run" in (PAGES / "guides" / "serving.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- CLI flags


def _commands():
    """(module, [flags]) for every `python -m tfbert.<module> ...` line in the code blocks of the README and the docs
    pages (but the generated CLI reference, whose usage lines are the parsers' own)."""
    found = []
    for _, body in (block for path in DOC_FILES if path != CLI_PAGE for block in _blocks(path)):
        for line in body.replace("\\\n", " ").splitlines():
            if "-m tfbert." not in line:
                continue
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words[:-1]):
                if word == "-m" and words[i + 1].startswith("tfbert."):
                    rest = words[i + 2:]
                    found.append((words[i + 1], [w.split("=", 1)[0] for w in rest if w.startswith("--")]))
    return found


def _table_flags(heading: str, path: Path = TRAINING_PAGE):
    """`--flags` written in the first column of the table under `heading` of a page."""
    text = path.read_text(encoding="utf-8")
    assert heading in text, f"{path.relative_to(ROOT)} has no heading {heading!r}"
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    return {f for row in section.splitlines() if row.startswith("| `--")
            for f in re.findall(r"`(--[\w-]+)`", row.split("|")[1])}


def _known_flags(module: str) -> set:
    assert importlib.util.find_spec(module), f"README runs `python -m {module}`, which does not exist"
    mod = importlib.import_module(module)
    if hasattr(mod, "build_parser"):
        return {s for action in mod.build_parser()._actions for s in action.option_strings}
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(re.findall(r"(?<![\w-])--[a-z][\w-]*", proc.stdout))


def test_every_cli_flag_in_the_readme_and_docs_exists():
    commands = _commands()
    assert {"tfbert.train", "tfbert.predict", "tfbert.evaluate", "tfbert.convert"} <= {m for m, _ in commands}
    used = {}
    for module, flags in commands:
        used.setdefault(module, set()).update(flags)
    train_tables = _table_flags("## `python -m tfbert.train` flags") | _table_flags("## Task options")
    assert len(train_tables) > 15  # the flags tables were found and read
    used.setdefault("tfbert.train", set()).update(train_tables)
    unknown = {}
    for module, flags in sorted(used.items()):
        if flags:
            missing = flags - _known_flags(module)
            if missing:
                unknown[module] = sorted(missing)
    assert not unknown, f"the README or the docs mention flags the CLIs do not have: {unknown}"


# The other flag tables of the docs: (page, heading) -> the commands whose flags they list.
FLAG_TABLES = {
    ("getting-started.md", "### `python -m tfbert.predict` and `python -m tfbert.evaluate` flags"):
        ("tfbert.predict", "tfbert.evaluate"),
    ("guides/tuning.md", "# Hyper-parameter search"): ("tfbert.tune",),
    ("guides/pretraining.md", "# Continued pre-training"): ("tfbert.pretrain",),
    ("tasks/embeddings.md", "## Options"): ("tfbert.embed",),
    ("tasks/classification.md", "## Task options and defaults"): ("tfbert.train",),
    ("tasks/multilabel.md", "## Task options and defaults"): ("tfbert.train",),
    ("tasks/regression.md", "## Task options and defaults"): ("tfbert.train",),
    ("tasks/qa.md", "## Task options and defaults"): ("tfbert.train",),
    ("guides/long-texts.md", "# Long texts"): ("tfbert.train",),
}


def test_every_flag_in_the_docs_flag_tables_exists():
    unknown = {}
    for (page, heading), modules in FLAG_TABLES.items():
        flags = _table_flags(heading, PAGES / page)
        assert flags, f"{page}: no flag table under {heading!r}"
        missing = flags - set().union(*(_known_flags(m) for m in modules))
        if missing:
            unknown[page] = sorted(missing)
    assert not unknown, f"docs flag tables name flags the CLIs do not have: {unknown}"
