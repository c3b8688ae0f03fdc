"""Built-in extractive QA data, offline: machine-reading questions over the Twitter NER corpus.

There is no SQuAD on the package registries, so `--task qa` without --train-file reads questions made from real
annotated text already at hand: the Twitter NER corpus (tfbert.data.tagged; ~2.4k tweets, 10 entity types).

* The context is a tweet: its tokens joined by single spaces (the corpus is tokenized; no original spacing exists).
* For every entity type a tweet mentions, one question ("Which person is mentioned?", QUESTIONS below); its
  answers are all the annotated spans of that type in the tweet, with their character offsets (SQuAD's metrics take
  the best match over gold answers; training uses the first).
* For every other tweet, with probability 1/2 (fixed seed, so the data do not change between runs), one question
  about a type the tweet does not mention, with no answer (SQuAD v2 style: the model must learn to abstain).

Splits are the NER task's (tfbert.data.tagged, 80/10/10 by tweet with the run's seed), so the test tweets are those
the NER and multi-label tasks report on, less the few the corpus repeats from an earlier split (retweets): no tweet
text is in two splits. `gazetteer_baseline` is the
rule-based baseline docs/pages/tasks/qa.md compares with.
"""
from __future__ import annotations

import random
import re

from tfbert.data.qa import QaDataset, Question, finish_dataset
from tfbert.data.tagged import Sentence, builtin_path, load_ner_dataset

__all__ = ["QUESTIONS", "tweet_questions", "builtin_questions", "load_builtin_dataset", "gazetteer_baseline"]

QUESTIONS = {
    "company": "Which company is mentioned?", "facility": "Which facility is mentioned?",
    "geo-loc": "Which place is mentioned?", "movie": "Which movie is mentioned?",
    "musicartist": "Which music artist is mentioned?", "other": "Which other named thing is mentioned?",
    "person": "Which person is mentioned?", "product": "Which product is mentioned?",
    "sportsteam": "Which sports team is mentioned?", "tvshow": "Which TV show is mentioned?",
}
NO_ANSWER_SHARE = 0.5  # tweets that also get one question about a type they do not mention
DATA_SEED = 0  # the questions are fixed; only the split follows --seed


def entities(sentence: Sentence) -> tuple[str, list[tuple[str, str, int]]]:
    """The tweet text (tokens joined by spaces) and its entities as (type, text, character start)."""
    text, spans, at, current = " ".join(sentence.tokens), [], 0, None
    for token, tag in zip(sentence.tokens, sentence.tags):
        if tag.startswith("B-") or (tag.startswith("I-") and (current is None or current[0] != tag[2:])):
            current = [tag[2:], at, at + len(token)]
            spans.append(current)
        elif tag.startswith("I-"):
            current[2] = at + len(token)
        else:
            current = None
        at += len(token) + 1
    return text, [(t, text[s:e], s) for t, s, e in spans]


def tweet_questions(sentences: list[Sentence], split: str, rng: random.Random) -> list[Question]:
    out = []
    for sentence in sentences:
        text, found = entities(sentence)
        types = sorted({t for t, _, _ in found})
        for t in types:
            answers = [(a, s) for u, a, s in found if u == t]
            out.append(Question(f"{split}-{sentence.line}-{t}", QUESTIONS[t], text, answers,
                                f"tweet at line {sentence.line}"))
        absent = [t for t in QUESTIONS if t not in types]
        if rng.random() < NO_ANSWER_SHARE:
            t = rng.choice(absent)
            out.append(Question(f"{split}-{sentence.line}-{t}", QUESTIONS[t], text, [],
                                f"tweet at line {sentence.line}"))
    return out


def builtin_questions(seed: int = 0, notes: list | None = None):
    """(train, valid, test) questions over the NER corpus' tweets, split by tweet as the NER task splits them."""
    ner = load_ner_dataset(seed=seed)  # the NER task's split of the corpus, its tags checked
    parts = (ner.train, ner.valid, ner.test)
    n_tweets = sum(map(len, parts))
    rng = random.Random(DATA_SEED)
    splits = [tweet_questions(part, name, rng) for part, name in zip(parts, ("train", "valid", "test"))]
    # The corpus repeats some tweets (retweets): a tweet of train is not asked about again in valid/test.
    seen, repeated = {q.context for q in splits[0]}, 0
    for i in (1, 2):
        kept = [q for q in splits[i] if q.context not in seen]
        repeated += len(splits[i]) - len(kept)
        seen |= {q.context for q in kept}
        splits[i] = kept
    if notes is not None:
        sizes = ", ".join(f"{name} {len(qs)} ({sum(not q.answers for q in qs)} without answer)"
                          for name, qs in zip(("train", "valid", "test"), splits))
        notes.append(f"Built-in QA data: questions per entity type over the {n_tweets} tweets of {builtin_path()}"
                     f" (tfbert.data.qa_builtin), split by tweet as --task ner (seed {seed}; {repeated} questions on tweets repeated from an "
                     f"earlier split left out): {sizes}.")
    return tuple(splits)


def load_builtin_dataset(*, seed: int = 0, max_train_examples: int | None = None,
                         min_questions: int = 1) -> QaDataset:
    """The built-in questions as a QaDataset, checked and subsampled as file data are (tfbert.data.qa)."""
    notes: list[str] = []
    train, valid, test = builtin_questions(seed, notes)
    return finish_dataset({"train": train, "valid": valid, "test": test}, "built-in tweet questions", notes, seed,
                          max_train_examples, min_questions)


def gazetteer_baseline(train: list[Question], questions: list[Question]) -> list[str]:
    """Rule-based answers: the longest training answer of the asked question that occurs in the context as whole
    words (case-insensitive), else no answer (""). What memorising the training entities alone achieves."""
    known: dict[str, set[str]] = {}
    for q in train:
        known.setdefault(q.question, set()).update(a.lower() for a in q.answer_texts)
    # Longest first, ties alphabetical: the answer must not depend on set order (hash randomisation).
    patterns = {question: sorted(names, key=lambda n: (-len(n), n)) for question, names in known.items()}
    out = []
    for q in questions:
        context = q.context.lower()
        hit = next((name for name in patterns.get(q.question, [])
                    if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", context)), None)
        if hit is None:
            out.append("")
        else:
            start = re.search(rf"(?<!\w){re.escape(hit)}(?!\w)", context).start()
            out.append(q.context[start:start + len(hit)])
    return out
