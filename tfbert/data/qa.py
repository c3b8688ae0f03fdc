"""Extractive QA data: read SQuAD v1.1/v2.0 JSON and Hugging Face-style JSONL, check every answer against its
context, split by context. No TensorFlow here: data problems surface before a model is built.

* SQuAD JSON: {"data": [{"paragraphs": [{"context": ..., "qas": [{"id", "question", "answers": [{"text",
  "answer_start"}], "is_impossible"}]}]}]} (v2.0 adds is_impossible; its plausible_answers are not answers).
* JSONL (the Hugging Face `datasets` layout), one question a line: {"id", "question", "context", "answers":
  {"text": [...], "answer_start": [...]}}; empty lists mean no answer (v2).

An answer is (text, character start): context[start:start + len(text)] must be text, else it is a DataError naming
the file, the question id and both strings, or with drop_mismatched=True the answer is dropped and counted (a
question that loses all its answers is dropped too: turning it into a no-answer question would teach a wrong label).

The built-in data (no --train-file) is made from the Twitter NER corpus: tfbert.data.qa_builtin.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from tfbert.data.tables import DataError, jsonl_rows, read_utf8


@dataclass(frozen=True)
class QaLayout:
    """How a question and its context share the window: [CLS] question [SEP] context window [SEP]."""
    max_seq_length: int
    doc_stride: int  # wordpieces two neighbouring context windows share
    max_query_length: int  # question wordpieces kept
    max_answer_length: int  # longest answer in wordpieces, when decoding

    @property
    def size(self) -> int:
        return self.max_seq_length - 3 - self.max_query_length

    @property
    def step(self) -> int:
        return self.size - self.doc_stride

    def check(self) -> None:
        from tfbert.config import ConfigError
        if self.size < 8:
            raise ConfigError(f"--max-query-length {self.max_query_length} leaves {self.size} wordpieces of context in "
                              f"a window of --max-seq-length {self.max_seq_length}; lower it")
        if not 0 <= self.doc_stride < self.size:
            raise ConfigError(f"--doc-stride {self.doc_stride} must be at least 0 and below the context window of "
                              f"{self.size} wordpieces (--max-seq-length less the question and 3 special tokens)")
        if self.max_answer_length < 1:
            raise ConfigError(f"--max-answer-length must be at least 1, not {self.max_answer_length}")

    def to_dict(self) -> dict:
        return {"max_seq_length": self.max_seq_length, "doc_stride": self.doc_stride,
                "max_query_length": self.max_query_length, "max_answer_length": self.max_answer_length,
                "window": self.size, "step": self.step}


__all__ = ["Question", "QaDataset", "read_squad", "read_qa_jsonl", "read_qa_file", "split_by_context",
           "load_qa_dataset", "finish_dataset"]

JSONL_EXTENSIONS = (".jsonl", ".ndjson")


@dataclass
class Question:
    id: str
    question: str
    context: str
    answers: list[tuple[str, int]]  # (text, character start in context); empty: the context does not answer it
    where: str = ""  # file and line or path inside it, for messages

    @property
    def answer_texts(self) -> list[str]:
        return [text for text, _ in self.answers]


@dataclass
class QaDataset:
    train: list[Question]
    valid: list[Question]
    test: list[Question]
    notes: list[str] = field(default_factory=list)

    @property
    def has_no_answer(self) -> bool:
        """SQuAD v2 style: some training question has no answer, so the model learns to abstain."""
        return any(not q.answers for q in self.train)


class _Checker:
    """Checks answers against their contexts; with `drop`, counts and drops the ones that do not match."""

    def __init__(self, path: Path, drop: bool):
        self.path, self.drop, self.dropped_answers, self.dropped_questions = path, drop, 0, 0

    def answers(self, qid: str, where: str, context: str, texts, starts) -> list[tuple[str, int]] | None:
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise DataError(f"{self.path}: question {qid!r} ({where}): answers need as many texts as answer_start "
                            f"values, got {json.dumps(texts)[:80]} and {json.dumps(starts)[:80]}.")
        kept = []
        for text, start in zip(texts, starts):
            if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
                raise DataError(f"{self.path}: question {qid!r} ({where}): an answer needs a string text and an "
                                f"integer answer_start, got {text!r} at {start!r}.")
            found = context[start:start + len(text)] if start >= 0 else None
            if found == text and text:
                kept.append((text, start))
            elif self.drop:
                self.dropped_answers += 1
            else:
                raise DataError(f"{self.path}: question {qid!r} ({where}): answer {text!r} does not match the context "
                                f"at answer_start {start}, which reads {found!r}. Fix the offset, or pass "
                                "--drop-mismatched to drop such answers (they are counted in the data notes).")
        if texts and not kept:  # every answer was wrong: not a no-answer question
            self.dropped_questions += 1
            return None
        return kept

    def note(self) -> str | None:
        if not (self.dropped_answers or self.dropped_questions):
            return None
        return (f"{self.path.name}: dropped {self.dropped_answers} answers that do not match their context at their "
                f"offset and {self.dropped_questions} questions left without an answer (--drop-mismatched).")


def _string(value, what: str, path: Path, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{path}: {where}: {what} must be a string, got {json.dumps(value)[:60]}.")
    return value


def read_squad(path, drop_mismatched: bool = False, notes: list | None = None) -> list[Question]:
    """SQuAD v1.1 / v2.0 JSON. Questions marked is_impossible have no answers."""
    path = Path(path)
    try:
        doc = json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f'{path}: expected SQuAD JSON, an object with a "data" list of articles with "paragraphs".')
    check, out = _Checker(path, drop_mismatched), []
    for a, article in enumerate(doc["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", []) if isinstance(article, dict) else []):
            where = f"data[{a}].paragraphs[{p}]"
            context = _string(paragraph.get("context"), "context", path, where)
            for k, qa in enumerate(paragraph.get("qas", [])):
                qid = str(qa.get("id", f"{where}.qas[{k}]"))
                question = _string(qa.get("question"), "question", path, f"{where}.qas[{k}]")
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                if not isinstance(answers, list) or not all(isinstance(x, dict) for x in answers):
                    raise DataError(f"{path}: question {qid!r}: answers must be a list of {{text, answer_start}}.")
                kept = check.answers(qid, f"{where}.qas[{k}]", context, [x.get("text") for x in answers],
                                     [x.get("answer_start") for x in answers])
                if kept is not None:
                    out.append(Question(qid, question, context, kept, f"{path.name} {where}.qas[{k}]"))
    if notes is not None and check.note():
        notes.append(check.note())
    return out


def read_qa_jsonl(path, drop_mismatched: bool = False, notes: list | None = None) -> list[Question]:
    """One question a line: {"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}."""
    path = Path(path)
    check, out = _Checker(path, drop_mismatched), []
    example = '{"question": ..., "context": ..., "answers": {"text": [...], "answer_start": [...]}}'
    for number, row in jsonl_rows(path, example):
        where = f"line {number}"
        if not isinstance(row, dict) or not {"question", "context"} <= set(row):
            raise DataError(f'{path}: {where}: expected an object with "question", "context" and "answers", got '
                            f"{json.dumps(row)[:60]!r}.")
        qid = str(row.get("id", where))
        answers = row.get("answers") or {"text": [], "answer_start": []}
        if not isinstance(answers, dict):
            raise DataError(f'{path}: {where}: "answers" must be {{"text": [...], "answer_start": [...]}}, got '
                            f"{json.dumps(answers)[:60]}.")
        context = _string(row["context"], "context", path, where)
        kept = check.answers(qid, where, context, answers.get("text", []), answers.get("answer_start", []))
        if kept is not None:
            out.append(Question(qid, _string(row["question"], "question", path, where), context, kept,
                                f"{path.name} {where}"))
    if notes is not None and check.note():
        notes.append(check.note())
    return out


def read_qa_file(path, drop_mismatched: bool = False, notes: list | None = None) -> list[Question]:
    """SQuAD JSON (.json) or JSONL (.jsonl/.ndjson, or a .json file of one object a line)."""
    path = Path(path)
    if path.suffix.lower() in JSONL_EXTENSIONS:
        questions = read_qa_jsonl(path, drop_mismatched, notes)
    else:
        head = read_utf8(path).lstrip()[:4096]
        squad = head.startswith("{") and '"data"' in head.split("\n", 1)[0] + head
        questions = (read_squad if squad else read_qa_jsonl)(path, drop_mismatched, notes)
    if not questions:
        raise DataError(f"{path}: no questions found. Expected SQuAD JSON or JSONL with question/context/answers.")
    return questions


# --------------------------------------------------------------------------- splits


def split_by_context(questions: list[Question], fractions: tuple[float, float], seed: int):
    """(rest, valid, test): whole contexts go to one split (seeded), so no context is read in two splits; each
    part takes contexts until it holds its fraction of the questions."""
    contexts = list(dict.fromkeys(q.context for q in questions))
    random.Random(seed).shuffle(contexts)
    by_context: dict[str, list[Question]] = {}
    for q in questions:
        by_context.setdefault(q.context, []).append(q)
    quotas = [max(1, round(f * len(questions))) if f > 0 else 0 for f in fractions]
    parts: list[list[Question]] = [[], []]
    rest: list[Question] = []
    for context in contexts:
        open_part = next((p for p, quota in zip(parts, quotas) if len(p) < quota), rest)
        open_part += by_context[context]
    return rest, parts[0], parts[1]


def load_qa_dataset(train_file, valid_file=None, test_file=None, *, seed: int = 0, drop_mismatched: bool = False,
                    valid_fraction: float = 0.1, test_fraction: float = 0.1, max_train_examples: int | None = None,
                    min_questions: int = 1) -> QaDataset:
    """Reads the files and splits missing valid/test parts off the train file by context. ``max_train_examples``
    subsamples the training questions only. (The built-in data: tfbert.data.qa_builtin.load_builtin_dataset.)"""
    notes: list[str] = []
    source = Path(train_file).name
    splits = {name: read_qa_file(f, drop_mismatched, notes)
              for name, f in (("train", train_file), ("valid", valid_file), ("test", test_file)) if f}
    if "valid" not in splits or "test" not in splits:
        n = len(splits["train"])
        train, valid, test = split_by_context(splits["train"], (valid_fraction if "valid" not in splits else 0,
                                                                test_fraction if "test" not in splits else 0), seed)
        if not train:
            raise DataError(f"{source}: {n} questions are too few to split off valid/test parts.")
        splits["train"] = train
        splits.setdefault("valid", valid)
        splits.setdefault("test", test)
        notes.append(f"Split {n} questions by context (seed {seed}; no context in two splits) into train "
                     f"{len(train)}, valid {len(splits['valid'])}, test {len(splits['test'])}.")
    return finish_dataset(splits, source, notes, seed, max_train_examples, min_questions)


def finish_dataset(splits: dict[str, list[Question]], source: str, notes: list[str], seed: int,
                   max_train_examples: int | None, min_questions: int) -> QaDataset:
    """Subsamples train (--max-train-examples), checks the split sizes and notes what the training data hold."""
    train = splits["train"]
    if max_train_examples is not None and len(train) > max_train_examples:
        train = random.Random(seed).sample(train, max_train_examples)
        notes.append(f"Subsampled train to {len(train)} questions (--max-train-examples).")
    if len(train) < min_questions:
        raise DataError(f"{source}: only {len(train)} training questions, fewer than the batch size {min_questions}; "
                        "add data or lower --batch-size.")
    for name in ("valid", "test"):
        if not splits[name]:
            raise DataError(f"{source}: the {name} split is empty; give --{name}-file or more data.")
    no_answer = sum(not q.answers for q in train)
    notes.append(f"Train: {len(train)} questions over {len({q.context for q in train})} contexts, {no_answer} without "
                 f"an answer ({'SQuAD v2 style: the model learns to abstain' if no_answer else 'SQuAD v1 style'}).")
    return QaDataset(train, splits["valid"], splits["test"], notes)
