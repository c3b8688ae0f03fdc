"""Extractive QA in the graph: training windows and their labels, decoding over windows with character offsets, the
export (fresh-process check inside export_qa) and hostile requests. A fixed "core" that points at one word makes
the right answer known, so offsets and windows are tested without training."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfbert.data.qa import Question
from tfbert.export.publish import fresh_process_env
from tfbert.export.qa import QaLayout, export_qa
from tfbert.tasks.qa import make_windows, span_loss

LAYOUT = QaLayout(max_seq_length=64, doc_stride=16, max_query_length=12, max_answer_length=8)  # windows of 49, step 33


class PointAt(tf.Module):
    """Span logits that put the answer on `word` (start and end) in the context, nowhere else: the best span is that
    word, and without it every span ties with the null answer (diff 0: no answer at threshold 0)."""

    def __init__(self, word_id: int):
        super().__init__()
        self.word_id = word_id

    @tf.function
    def __call__(self, inputs, training=False):
        hit = (inputs["input_word_ids"] == self.word_id) & (inputs["input_type_ids"] == 1)
        logit = tf.where(hit, 10.0, 0.0)
        return tf.stack([logit, logit], axis=-1)


@pytest.fixture(scope="module")
def preprocess(tiny_pair):
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401
    return hub.load(str(tiny_pair / "preprocess"))


@pytest.fixture(scope="module")
def zebra(preprocess):
    ids = preprocess.tokenize(tf.constant(["zebra"])).flat_values.numpy()
    assert len(ids) == 1
    return int(ids[0])


def long_context(n_words: int = 2100, at: int = 1900):
    words = ["Zoë", "visited", "São", "Paulo", "👍🏽", "日本", "and", "then", "walked", "home"]
    text = " ".join(words[i % len(words)] for i in range(at)) + " Zebra " + " ".join(["plain"] * (n_words - at))
    return text, text.index("Zebra")


def test_training_windows_label_the_answer_only_in_the_windows_that_hold_it(preprocess):
    context, at = long_context(300, 250)
    questions = [Question("a", "Which animal?", context, [("Zebra", at)]), Question("b", "Which?", context, []),
                 Question("c", "Short?", "Zebra here", [("Zebra", 0)])]
    w = make_windows(preprocess, questions, LAYOUT)
    per_question = np.bincount(w.item, minlength=3)
    assert per_question[0] == per_question[1] > 5 and per_question[2] == 1
    labelled = w.labels[w.item == 0]
    assert (labelled[:, 0] > 0).sum() in (1, 2)  # the answer sits in one window, or two where they overlap
    for row in np.flatnonzero((w.item == 0) & (w.labels[:, 0] > 0)):
        q_len = w.question[row].shape[0]
        piece = w.context[row].numpy()[w.labels[row, 0] - q_len - 2]
        assert piece == preprocess.tokenize(tf.constant(["zebra"])).flat_values.numpy()[0]
    assert (w.labels[w.item == 1] == 0).all()  # no answer: [CLS]
    assert w.labels[w.item == 2].tolist() == [[w.question[-1].shape[0] + 2] * 2]
    assert w.facts["contexts_over_one_window"] == 2 and w.facts["windows_with_answer"] >= 2
    # The loss is the mean of the start and end cross-entropies.
    logits = tf.constant([[[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])
    expected = (np.log(np.exp([0, 2, 0]).sum()) - 2 + np.log(np.exp([0, 0, 1]).sum()) - 1) / 2
    assert float(span_loss(tf.constant([[1, 2]]), logits)[0]) == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_pair, zebra):
    base = tmp_path_factory.mktemp("qa") / "qa"
    return export_qa(PointAt(zebra), str(tiny_pair / "preprocess"), LAYOUT, base, no_answer=True, threshold=0.0,
                     log=lambda *_: None)


def test_a_context_of_2000_words_is_answered_from_its_late_window_with_python_offsets(exported):
    context, at = long_context()
    assert len(context.split()) > 2000
    model = tf.saved_model.load(str(exported)).signatures["serving_default"]
    out = model(question=tf.constant(["Which animal?", "Which animal?", "Which animal?"]),
                context=tf.constant([context, "no such animal here", "日本 Zebra 👍🏽"]))
    answers = [a.decode() for a in out["answer"].numpy()]
    start, end = out["start"].numpy(), out["end"].numpy()
    assert answers == ["Zebra", "", "Zebra"] and out["has_answer"].numpy().tolist() == [True, False, True]
    assert (start[0], end[0]) == (at, at + 5) and context[start[0]:end[0]] == "Zebra"
    assert (start[1], end[1]) == (-1, -1) and (start[2], end[2]) == (3, 8)
    assert 0.9 < out["score"].numpy()[0] <= 1.0


_HOSTILE = r"""
import json, sys
import numpy as np
import tensorflow as tf, tensorflow_text  # noqa: F401
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
q = [b"", b"Which animal?", b"bad \xff\xfe", b"Which animal?", b"\x00\x07", b"x" * 5000]
c = [b"Zebra", b"", b"Zebra \xff here", b"\xc3( Zebra", b"Zebra " * 3000, b"zebra"]
out = {}
for name, (qs, cs) in {"mixed": (q, c), "batch 1": (q[:1], c[:1]), "batch 500": (((q[:4] + q[5:]) * 100)[:500], ((c[:4] + c[5:]) * 100)[:500])}.items():
    r = {k: v.numpy() for k, v in fn(question=tf.constant(qs), context=tf.constant(cs)).items()}
    out[name] = {"n": {k: len(v) for k, v in r.items()}, "finite": bool(np.isfinite(r["score"]).all()),
                 "answers": [a.decode("utf-8", "replace") for a in r["answer"][:6]], "start": r["start"][:6].tolist()}
assert not [m for m in sys.modules if m.split('.')[0] in ('tfbert', 'tensorflow_hub', 'tf_keras')]
print("RESULT" + json.dumps(out))
"""


def test_hostile_requests_get_an_answer_per_question_in_a_process_with_only_tensorflow(exported):
    r = subprocess.run([sys.executable, "-c", _HOSTILE, str(exported)], capture_output=True, text=True, timeout=300,
                       env=fresh_process_env())
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads([line for line in r.stdout.splitlines() if line.startswith("RESULT")][-1][len("RESULT"):])
    for name, n in (("mixed", 6), ("batch 1", 1), ("batch 500", 500)):
        assert set(out[name]["n"].values()) == {n} and out[name]["finite"], name
    # Empty question: still read; empty context: no answer; invalid UTF-8 around the answer: still found.
    assert out["mixed"]["answers"] == ["Zebra", "", "Zebra", "Zebra", "Zebra", "zebra"]
    assert out["mixed"]["start"][:2] == [0, -1]


def test_a_model_trained_without_no_answer_questions_always_answers_and_has_no_has_answer(preprocess, zebra):
    from tfbert.export.qa import QaReader
    reader = QaReader(preprocess, PointAt(zebra), LAYOUT, no_answer=False)
    contexts = ["nothing to see here at all", "a Zebra", ""]
    out = reader.serve(tf.constant(["Which animal?"] * 3), tf.constant(contexts))
    assert "has_answer" not in out
    answers, start, end = [a.decode() for a in out["answer"].numpy()], out["start"].numpy(), out["end"].numpy()
    assert answers[0] != "" and contexts[0][start[0]:end[0]] == answers[0]  # v1: the best span even at a tie
    assert answers[1:] == ["Zebra", ""] and (start[2], end[2]) == (-1, -1)  # an empty context has no span


def test_the_readme_rest_example_matches_the_qa_signature(exported):
    from test_readme import _rest_examples
    [(request, response, _)] = [x for x in _rest_examples() if x[2] == "qa"]
    fn = tf.saved_model.load(str(exported)).signatures["serving_default"]
    instances = request["instances"]
    assert all(set(x) == set(fn.structured_input_signature[1]) for x in instances)
    out = fn(**{k: tf.constant([x[k] for x in instances]) for k in ("question", "context")})
    assert len(response["predictions"]) == len(instances)
    for x, example in zip(instances, response["predictions"]):
        assert set(example) == set(out)
        assert x["context"][example["start"]:example["end"]] == example["answer"] or example["start"] == -1
        assert example["has_answer"] == (example["answer"] != "")
