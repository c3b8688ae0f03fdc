"""QA data (SQuAD JSON, JSONL, checks, context splits, the built-in tweet questions) and SQuAD metrics."""
import json

import pytest

from tfbert.data.qa import load_qa_dataset, read_qa_file, split_by_context
from tfbert.data.qa_builtin import builtin_questions, gazetteer_baseline
from tfbert.data.tables import DataError
from tfbert.metrics.qa import best_threshold, normalize_answer, qa_metrics, token_f1

CONTEXT = "Denver Broncos won Super Bowl 50 in Santa Clara."


def squad(path, answers, impossible=False, qid="q1", context=CONTEXT):
    qa = {"id": qid, "question": "Who won?", "answers": answers, **({"is_impossible": True} if impossible else {})}
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [qa]}]}]}), encoding="utf-8")
    return path


def test_squad_v1_and_v2_json_and_jsonl_read_the_same_questions(tmp_path):
    v1 = read_qa_file(squad(tmp_path / "v1.json", [{"text": "Denver Broncos", "answer_start": 0},
                                                   {"text": "Broncos", "answer_start": 7}]))
    assert [(q.id, q.question, q.answers) for q in v1] == [("q1", "Who won?", [("Denver Broncos", 0), ("Broncos", 7)])]
    v2 = read_qa_file(squad(tmp_path / "v2.json", [], impossible=True))
    assert v2[0].answers == []
    lines = [{"id": "a", "question": "Where?", "context": CONTEXT,
              "answers": {"text": ["Santa Clara"], "answer_start": [36]}},
             {"id": "b", "question": "Who lost?", "context": CONTEXT, "answers": {"text": [], "answer_start": []}}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    got = read_qa_file(tmp_path / "d.jsonl")
    assert [(q.id, q.answers) for q in got] == [("a", [("Santa Clara", 36)]), ("b", [])]


def test_a_mismatched_answer_names_file_question_and_both_strings_or_is_dropped_and_counted(tmp_path):
    path = squad(tmp_path / "bad.json", [{"text": "Broncos", "answer_start": 3}], qid="q-77")
    with pytest.raises(DataError) as e:
        read_qa_file(path)
    assert all(s in str(e.value) for s in ("bad.json", "'q-77'", "'Broncos'", "'ver Bro'"))
    notes = []
    assert read_qa_file(squad(tmp_path / "mixed.json", [{"text": "Broncos", "answer_start": 3},
                                                        {"text": "Broncos", "answer_start": 7}]),
                        drop_mismatched=True, notes=notes)[0].answers == [("Broncos", 7)]
    assert "dropped 1 answers" in notes[0] and "0 questions" in notes[0]
    # A question that loses every answer is dropped, not turned into a no-answer question.
    with pytest.raises(DataError, match="no questions"):
        read_qa_file(path, drop_mismatched=True)


@pytest.mark.parametrize("text, message", [
    ('{"question": "q", "context": "c"}\n\n{"question": "q", "context": \n', r"q\.jsonl: line 3: not valid JSON \(.* at column \d+\)"),
    ('["q", "c"]\n', r'q\.jsonl: line 1: expected an object with "question", "context"'),
])
def test_a_bad_jsonl_line_names_file_line_and_column(tmp_path, text, message):
    (tmp_path / "q.jsonl").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_qa_file(tmp_path / "q.jsonl")


def test_splits_by_context_never_share_a_context(tmp_path):
    lines = [{"id": f"{c}-{k}", "question": f"q{k}", "context": f"context number {c}",
              "answers": {"text": ["number"], "answer_start": [8]}} for c in range(30) for k in range(3)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    data = load_qa_dataset(tmp_path / "t.jsonl", seed=3)
    contexts = [{q.context for q in split} for split in (data.train, data.valid, data.test)]
    assert not (contexts[0] & contexts[1] or contexts[0] & contexts[2] or contexts[1] & contexts[2])
    assert [len(s) for s in (data.train, data.valid, data.test)] == [72, 9, 9]
    rest, valid, test = split_by_context(data.train, (0.5, 0), 0)
    assert test == [] and len(valid) == 36 and not {q.context for q in rest} & {q.context for q in valid}


def test_builtin_questions_are_annotated_spans_at_their_offsets_split_by_tweet():
    train, valid, test = builtin_questions(0)
    for q in train + valid + test:
        assert all(q.context[s:s + len(t)] == t for t, s in q.answers)
    assert {q.context for q in train}.isdisjoint({q.context for q in test})
    person = next(q for q in train if q.question == "Which person is mentioned?" and len(q.answers) > 1)
    assert len(person.answers) > 1  # every annotated person of the tweet is a gold answer
    assert 0.3 < sum(not q.answers for q in train) / len(train) < 0.6
    # The rule-based baseline finds known names as whole words only, and answers "" otherwise.
    q = type(person)("x", "Which person is mentioned?", "Samuel met sam today", [("sam", 11)])
    assert gazetteer_baseline([person], [q]) == ["sam" if "sam" in person.answer_texts else ""]


def test_squad_metrics_match_the_official_normalisation_by_hand():
    assert normalize_answer("The  Denver-Broncos!") == "denverbroncos"
    assert normalize_answer("an apple a day") == "apple day"
    # pred "Denver Broncos team" vs gold "the Denver Broncos": 2 common of 3 predicted, 2 gold -> P 2/3, R 1 -> 0.8
    assert token_f1("Denver Broncos team", "the Denver Broncos") == pytest.approx(0.8)
    m = qa_metrics([["Denver Broncos", "Broncos"], ["Santa Clara"], []],
                   ["Broncos", "Clara, California", ""])
    # q1: exact on the second gold; q2: 1 common, P 1/2, R 1/2 -> F1 0.5; q3: no answer predicted for no answer.
    assert m["exact"] == pytest.approx(100 * 2 / 3) and m["f1"] == pytest.approx(100 * 2.5 / 3)
    assert (m["HasAns_total"], m["NoAns_total"], m["HasAns_f1"], m["NoAns_exact"]) == (2, 1, 75.0, 100.0)
    # Without no-answer questions there is no HasAns/NoAns split; "x y" vs "y": P 1, R 1/2 -> F1 2/3.
    assert "HasAns_f1" not in qa_metrics([["x y"]], ["y"]) and qa_metrics([["x y"]], ["y"])["f1"] == \
        pytest.approx(100 * 2 / 3)
    # "a" is an article: gold "a b" normalises to "b", so "b" is exact and "a" (normalised to nothing) scores 0.
    assert qa_metrics([["a b"]], ["b"])["exact"] == 100.0 and qa_metrics([["a b"]], ["a"])["f1"] == 0.0


def test_best_threshold_answers_exactly_the_questions_that_gain():
    golds = [["paris"], [], ["rome"], []]
    spans = ["paris", "london", "milan", "oslo"]
    t = best_threshold(golds, spans, [5.0, 1.0, 3.0, -2.0])
    # Answering only the first (diff 5) is right on 1, 2 and 4 (3 of 4): the threshold falls between 5 and 3.
    assert 3.0 < t < 5.0


def test_qa_settings_that_cannot_work_are_refused_naming_the_flag():
    from tfbert.config import ConfigError, RunConfig
    from tfbert.tasks import TASKS

    task = TASKS["qa"]()

    def config(**settings):
        options = {k: settings.pop(k) for k in ("doc_stride", "max_query_length") if k in settings}
        return RunConfig(task="qa", options=options, **settings).with_task_defaults(task, log=lambda *_: None)

    task.check_config(config(), log=lambda *_: None)  # defaults at 128: window 104, overlap 42
    for settings, flag in (({"doc_stride": 104}, "--doc-stride 104"), ({"max_query_length": 120}, "--max-query-length"),
                           ({"long_texts": "head-tail"}, "--long-texts head-tail")):
        with pytest.raises(ConfigError, match=flag):
            task.check_config(config(**settings), log=lambda *_: None)
    with pytest.raises(ConfigError, match="need --train-file"):
        task.load_data(config(test_file="dev.json"))
