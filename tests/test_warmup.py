"""TF Serving warm-up records: every export carries assets.extra/tf_serving_warmup_requests, PredictionLogs whose
PredictRequests name the export's signatures, hold its check texts as string tensors and run on the export. Also
the docs' `saved_model_cli run` example (docs/pages/reference/run-folder.md, Signatures), run on an export."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from tfbert.export.base import CHECK_TEXTS
from tfbert.export.warmup import WARMUP_FILE, read_warmup_requests, warmup_requests

# The page that shows how to run a signature with saved_model_cli (the README links to it).
RUN_FOLDER_PAGE = Path(__file__).resolve().parents[1] / "docs" / "pages" / "reference" / "run-folder.md"


def test_export_carries_warmup_requests_that_it_answers(folder_trained):
    export = Path(folder_trained[1]["export"])
    # TF Serving reads a TFRecord file of PredictionLog; its predict_log is field 6, length-delimited (tag 0x32).
    raw = [r.numpy() for r in tf.data.TFRecordDataset(str(export / WARMUP_FILE))]
    assert len(raw) == 2 and all(r[:1] == b"\x32" for r in raw)

    logs = read_warmup_requests(export)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 2
    requests = [log.predict_log.request for log in logs]
    assert [(r.model_spec.name, r.model_spec.signature_name) for r in requests] == [("imdb", "serving_default")] * 2
    model = tf.saved_model.load(str(export))
    # The exporter's check texts as one batch, then the first alone (a single-text request).
    for request, texts in zip(requests, (CHECK_TEXTS, CHECK_TEXTS[:1])):
        assert list(request.inputs) == ["text"] and request.inputs["text"].dtype == types_pb2.DT_STRING
        values = tf.make_ndarray(request.inputs["text"])
        assert [v.decode("utf-8") for v in values] == texts
        out = model.signatures["serving_default"](text=tf.constant(values))
        assert out["probabilities"].shape == (len(texts), 2) and set(out["label"].numpy()) <= {b"neg", b"pos"}


def test_pair_signatures_get_requests_with_both_inputs():
    logs = warmup_requests({"serving_default": {"text": ["a", "b"]},
                            "serving_pairs": {"text": ["a", "b"], "text_b": ["Zoë", "c"]}}, "nli")
    got = [(log.predict_log.request.model_spec.signature_name,
            {k: [v.decode() for v in tf.make_ndarray(t)] for k, t in log.predict_log.request.inputs.items()})
           for log in logs]
    assert got == [("serving_default", {"text": ["a", "b"]}), ("serving_default", {"text": ["a"]}),
                   ("serving_pairs", {"text": ["a", "b"], "text_b": ["Zoë", "c"]}),
                   ("serving_pairs", {"text": ["a"], "text_b": ["Zoë"]})]


def test_docs_saved_model_cli_run_example_works(folder_trained):
    """The docs' command, with the venv's python and this export, prints the signature's outputs."""
    text = RUN_FOLDER_PAGE.read_text(encoding="utf-8")
    assert "saved_model_cli run" in text.split("## Signatures", 1)[1].split("\n## ", 1)[0]  # under Signatures
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
    commands = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()
                if "saved_model_cli" in line and " run " in line]
    assert len(commands) == 1, commands
    argv = shlex.split(commands[0].replace("saved_models/sentiment/1", folder_trained[1]["export"]))
    assert argv[0] == "python"
    r = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0, r.stderr[-2000:]
    labels = re.search(r"Result for output key label:\n\[(.*)\]", r.stdout)
    assert labels and set(re.findall(r"b'(\w+)'", labels.group(1))) <= {"neg", "pos"}
    probabilities = re.search(r"output key probabilities:\n\[\[([^\]]*)\]", r.stdout)
    assert probabilities and np.isclose(sum(map(float, probabilities.group(1).split())), 1, atol=1e-4)
