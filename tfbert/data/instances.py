"""Pre-training sequences from tokenized documents: one text per sequence, packed, or BERT's segment pairs.

A document is a list of segments (sentences, or a table's rows; tfbert.data.texts), each segment its wordpiece ids
and the index of the word each piece belongs to. A sequence is [CLS] ... [SEP] with input_type_ids and, for each
position, a word index unique within the sequence (-1 at [CLS], [SEP]: never masked), plus the pair label.

Packing (`packing`):
* none:     one document per sequence, its segments joined and cut to the window (the earlier recipe).
* document: consecutive segments of one document fill a sequence up to the window; a document longer than the
            window becomes several sequences instead of being cut. Never crosses a document.
* full:     consecutive documents fill a sequence, a [SEP] between two documents (RoBERTa's FULL-SENTENCES): short
            texts share a sequence. Masked LM only: a pair label is undefined across documents.

Pairs (`objective` nsp or sop), after BERT's create_pretraining_data.create_instances_from_document: consecutive
segments of a document are gathered up to a target length (the window less [CLS] and two [SEP]; with probability
SHORT_SEQUENCE_SHARE a random shorter one), cut at a random segment boundary into A and B; then a fair coin:
* nsp: heads, B is replaced by segments of another document from a random start (label 1, "not next"), and the
       segments of A's document that B would have used are put back for the next gathering; tails, B stays (label 0).
* sop: heads, A and B are swapped (label 1, "swapped"); tails, they stay (label 0). Both always from one document.
The pair is then cut to the window (the longer side loses a piece, from its front or back at random). Unlike BERT,
whose one-segment gatherings always become "not next" pairs, a gathering of one segment is a masked-LM-only
sequence (pair weight 0), so the label is a fair coin on every pair.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PACKING = ("none", "document", "full")
PAIR_OBJECTIVES = ("nsp", "sop")
SHORT_SEQUENCE_SHARE = 0.1  # BERT's short_seq_prob: some shorter pairs, so fine-tuning lengths are not unseen


@dataclass(frozen=True)
class Segment:
    ids: np.ndarray  # int32 wordpiece ids
    words: np.ndarray  # int32 word index of each piece, from 0 within the segment

    def __len__(self) -> int:
        return len(self.ids)

    def cut(self, start: int, stop: int) -> "Segment":
        return Segment(self.ids[start:stop], self.words[start:stop])


@dataclass
class Sequences:
    """The built sequences as flat arrays (row lengths `lengths`), and what building them did."""
    ids: np.ndarray
    types: np.ndarray
    words: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray  # pair label per sequence: 0 next / in order, 1 not next / swapped
    weights: np.ndarray  # 1.0 for a pair, 0.0 for a masked-LM-only sequence
    stats: dict = field(default_factory=dict)


class _Builder:
    def __init__(self, cls_id: int, sep_id: int):
        self.cls_id, self.sep_id = cls_id, sep_id
        self.rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, int, float]] = []

    def add(self, parts: list[list[Segment]], label: int = 0, weight: float = 0.0) -> None:
        """[CLS] part0 [SEP] part1 [SEP] ...: each part its segments; type id i for part i (at most 2 parts for
        pairs; a full-packing sequence is several parts of type 0)."""
        ids, types, words = [np.array([self.cls_id], np.int32)], [np.zeros(1, np.int32)], [np.full(1, -1, np.int32)]
        part_ids, part_words = _join([seg for part in parts for seg in part])  # word indices unique in the sequence
        start = 0
        for i, part in enumerate(parts):
            n = _pieces(part)
            ids += [part_ids[start:start + n], np.array([self.sep_id], np.int32)]
            types.append(np.full(n + 1, i if weight else 0, np.int32))
            words += [part_words[start:start + n], np.full(1, -1, np.int32)]
            start += n
        self.rows.append((np.concatenate(ids), np.concatenate(types), np.concatenate(words), label, weight))

    def result(self, stats: dict) -> Sequences:
        if not self.rows:
            empty = np.zeros(0, np.int32)
            return Sequences(empty, empty, empty, np.zeros(0, np.int64), empty, np.zeros(0, np.float32), stats)
        ids, types, words, labels, weights = zip(*self.rows)
        return Sequences(np.concatenate(ids), np.concatenate(types), np.concatenate(words),
                         np.array([len(r) for r in ids], np.int64), np.array(labels, np.int32),
                         np.array(weights, np.float32), {**stats, "sequences": len(ids),
                                                         "pairs": int(np.sum(weights))})


def _pieces(segments) -> int:
    return sum(len(s) for s in segments)


def _windows(segment: Segment, cap: int) -> list[Segment]:
    """A segment longer than `cap` pieces as consecutive cuts of at most `cap`."""
    return [segment.cut(i, i + cap) for i in range(0, len(segment), cap)] if len(segment) > cap else [segment]


def single_sequences(documents: list[list[Segment]], max_seq_length: int, packing: str, cls_id: int,
                     sep_id: int) -> Sequences:
    """Masked-LM sequences by `packing` (see the module's docstring)."""
    if packing not in PACKING:
        raise ValueError(f"packing {packing!r}: choose one of {', '.join(PACKING)}")
    cap = max_seq_length - 2  # [CLS] and the closing [SEP]
    b = _Builder(cls_id, sep_id)
    total = _pieces(s for d in documents for s in d)
    if packing == "none":
        cut = 0
        for doc in documents:
            kept, room = [], cap
            for seg in doc:
                kept.append(seg.cut(0, room))
                room -= len(kept[-1])
            cut += _pieces(doc) - _pieces(kept)
            b.add([kept])
        return b.result({"documents": len(documents), "wordpieces": total, "wordpieces_cut": cut})
    parts: list[list[Segment]] = []  # the sequence being filled: one part per document (full) or one part
    used = 0  # its pieces, with the [SEP]s between parts

    def flush():
        nonlocal parts, used
        while parts and not parts[-1]:  # a document that did not start here
            parts.pop()
        if parts:
            b.add(parts)
        parts, used = [], 0

    for doc in documents:
        if packing == "document":
            flush()
        elif parts and used + 1 >= cap:  # no room for a separator and a piece
            flush()
        if parts:
            used += 1  # the [SEP] closing the previous document's part
        parts.append([])
        for seg in doc:
            for piece in _windows(seg, cap):
                if used + len(piece) > cap:
                    flush()
                    parts.append([])
                parts[-1].append(piece)
                used += len(piece)
    flush()
    return b.result({"documents": len(documents), "wordpieces": total, "wordpieces_cut": 0})


def _truncate_pair(a: list[Segment], b: list[Segment], limit: int, rng: np.random.Generator) -> int:
    """BERT's truncate_seq_pair on segment lists: the longer side loses a piece from its front or back at random
    until both fit in `limit`. Returns the pieces removed."""
    a_ids, b_ids = Segment(*_join(a)), Segment(*_join(b))
    removed = 0
    lo = {"a": 0, "b": 0}
    hi = {"a": len(a_ids), "b": len(b_ids)}
    while (hi["a"] - lo["a"]) + (hi["b"] - lo["b"]) > limit:
        side = "a" if hi["a"] - lo["a"] > hi["b"] - lo["b"] else "b"
        if rng.random() < 0.5:
            lo[side] += 1
        else:
            hi[side] -= 1
        removed += 1
    a[:] = [a_ids.cut(lo["a"], hi["a"])]
    b[:] = [b_ids.cut(lo["b"], hi["b"])]
    return removed


def _join(segments: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Segments as one: ids concatenated, word indices made unique across them."""
    ids, words, offset = [], [], 0
    for seg in segments:
        ids.append(seg.ids)
        words.append(seg.words + offset)
        offset += int(seg.words.max()) + 1 if len(seg) else 0
    if not ids:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate(ids).astype(np.int32), np.concatenate(words).astype(np.int32)


def pair_sequences(documents: list[list[Segment]], max_seq_length: int, objective: str, cls_id: int, sep_id: int,
                   rng: np.random.Generator) -> Sequences:
    """NSP or SOP pairs (see the module's docstring); gatherings of one segment are masked-LM-only sequences."""
    if objective not in PAIR_OBJECTIVES:
        raise ValueError(f"objective {objective!r}: choose one of {', '.join(PAIR_OBJECTIVES)}")
    limit = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    b = _Builder(cls_id, sep_id)

    def draw_target() -> int:
        return int(rng.integers(2, limit + 1)) if rng.random() < SHORT_SEQUENCE_SHARE else limit
    cut = 0
    for d, doc in enumerate(documents):
        target = draw_target()
        chunk: list[Segment] = []
        i = 0
        while i < len(doc):
            chunk.append(doc[i])
            if i == len(doc) - 1 or _pieces(chunk) >= target:
                if len(chunk) == 1:  # no boundary to cut at: masked LM only
                    for piece in _windows(chunk[0], max_seq_length - 2):
                        b.add([[piece]])
                else:
                    a_end = int(rng.integers(1, len(chunk)))
                    a, rest = chunk[:a_end], chunk[a_end:]
                    label = int(rng.random() < 0.5)
                    if objective == "nsp" and label and len(documents) > 1:
                        other = int(rng.integers(0, len(documents) - 1))
                        other += other >= d  # any document but this one
                        start = int(rng.integers(0, len(documents[other])))
                        second, want = [], target - _pieces(a)
                        for seg in documents[other][start:]:
                            second.append(seg)
                            if _pieces(second) >= want:
                                break
                        i -= len(rest)  # B's segments of this document are gathered again
                    elif objective == "nsp":
                        second, label = rest, 0  # a single document: no other to draw B from
                    else:
                        a, second = (rest, a) if label else (a, rest)
                    cut += _truncate_pair(a, second, limit, rng)
                    b.add([a, second], label=label, weight=1.0)
                chunk = []
                target = draw_target()
            i += 1
    total = _pieces(s for d in documents for s in d)
    return b.result({"documents": len(documents), "wordpieces": total, "wordpieces_cut": cut})
