"""Texts longer than the encoder's window: which wordpieces are kept (--long-texts) and how much is cut.

The window is --max-seq-length minus the special tokens: [CLS] text [SEP] leaves max_seq_length - 2 wordpieces,
[CLS] a [SEP] b [SEP] leaves max_seq_length - 3 for a pair, shared round-robin as the preprocess model's
bert_pack_inputs trims (RoundRobinTrimmer: one piece to each segment in turn, a segment that runs out leaves the
rest to the other).

  truncate   the first wordpieces of each segment, as BERT packs by default
  head-tail  the first quarter of a segment's share and the last three quarters (Sun et al. 2019, "How to
             Fine-Tune BERT for Text Classification?": 128 head + 382 tail at 512 was best on long reviews);
             head = (share + 2) // 4 wordpieces, so 128 + 382 at --max-seq-length 512, 32 + 94 at 128.
  windows    every wordpiece, read through overlapping windows (tfbert.data.windows, cut by TextPipeline.windows)
             up to the reach of --max-windows windows; single texts only.

`keep_segments` is the one function that cuts, in the training pipeline and in the exported serving graph alike
(both call it through tfbert.data.pipeline.TextPipeline), so training and serving see the same wordpieces.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

LONG_TEXTS = ("truncate", "head-tail", "windows")


def window(max_seq_length: int, n_segments: int) -> int:
    """Wordpieces of text that fit beside [CLS] and one [SEP] per segment."""
    return max_seq_length - n_segments - 1


def head_length(share):
    """Head wordpieces kept of a segment allowed `share` (int or int tensor): a quarter, 128 of 510."""
    return (share + 2) // 4


def round_robin_shares(lengths: list, budget):
    """Per row, the wordpieces of each segment that RoundRobinTrimmer keeps within `budget` (1 or 2 segments)."""
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], budget)]
    a, b = lengths
    kept_a = tf.minimum(a, tf.maximum(-(-budget // 2), budget - b))  # the first segment gets the odd piece
    return [kept_a, tf.minimum(b, budget - kept_a)]


def head_tail(ids: tf.RaggedTensor, keep) -> tf.RaggedTensor:
    """The first head_length(keep) and the last keep - head wordpieces of each row (keep: int64 [rows]); rows
    that fit are unchanged."""
    lengths = ids.row_lengths()
    head = head_length(keep)
    tail_start = lengths - (keep - head)
    positions = tf.ragged.range(lengths)
    kept = (positions < head[:, None]) | (positions >= tail_start[:, None])
    return tf.ragged.boolean_mask(ids, kept)


def keep_segments(segments: list, max_seq_length: int, mode: str = "truncate") -> list:
    """Ragged wordpiece ids [batch, (pieces)] of 1 or 2 segments -> the ids packing keeps.

    truncate: each segment cut at max_seq_length (the packer's round-robin trim does the rest; cutting early keeps
    a cache of huge texts small). head-tail: each segment cut to exactly its round-robin share, head and tail.
    """
    check_mode(mode)
    if mode == "windows":
        raise ValueError("long_texts windows: the windows are cut by TextPipeline.windows, not here")
    if mode == "truncate":
        return [s[:, :max_seq_length] for s in segments]
    lengths = [s.row_lengths() for s in segments]
    shares = round_robin_shares(lengths, tf.constant(window(max_seq_length, len(segments)), tf.int64))
    return [head_tail(s, share) for s, share in zip(segments, shares)]


def default_stride(size: int) -> int:
    """--window-stride's default: half the window (63 of 126), so every wordpiece but the first and last half
    windows' is read twice, once with context on each side."""
    return max(1, size // 2)


def reach(size: int, step: int, max_windows: int) -> int:
    """Wordpieces of a text that --max-windows windows read: past them, a text is cut."""
    return size + (max_windows - 1) * step


def check_mode(mode: str) -> None:
    if mode not in LONG_TEXTS:
        raise ValueError(f"long_texts must be one of {', '.join(LONG_TEXTS)}, not {mode!r}")


# --------------------------------------------------------------------------- how much is cut


def share(part, whole) -> float:
    return round(float(part) / float(whole), 6) if whole else 0.0


def percent(x: float) -> str:
    """0.0% only when nothing is cut: one long row in 37k shows as <0.1%."""
    return "<0.1%" if 0 < x < 0.0005 else f"{100 * x:.1f}%"


def truncation_stats(lengths: list, window_size: int) -> dict:
    """Rows longer than the window and wordpieces lost, from each row's full wordpiece count per segment. The
    count lost does not depend on which pieces are kept (truncate and head-tail cut as many)."""
    total = np.sum([np.asarray(x, np.int64) for x in lengths], axis=0) if lengths else np.zeros(0, np.int64)
    cut = np.maximum(total - window_size, 0)
    return {"rows": int(total.size), "rows_cut": int((cut > 0).sum()), "rows_cut_share": share((cut > 0).sum(), total.size),
            "wordpieces": int(total.sum()), "wordpieces_cut": int(cut.sum()),
            "wordpieces_cut_share": share(cut.sum(), total.sum())}


def truncation_note(report: dict, max_seq_length: int, unit: str = "rows") -> str:
    """One data-note line from a truncation report ({"window": n, "splits": {split: stats}})."""
    parts = []
    for split, s in report["splits"].items():
        part = (f"{split} {percent(s['rows_cut_share'])} of {unit} longer ({s['rows_cut']} of {s['rows']}), "
                f"{percent(s['wordpieces_cut_share'])} of wordpieces cut")
        if "words_cut" in s:
            part += f", {percent(s['words_cut_share'])} of words ({s['words_cut']}, tagged O)"
        parts.append(part)
    how = report.get("long_texts", "truncate")
    windows = report.get("windows")
    read = (f", read in windows advancing by {windows['stride']}, at most {windows['max_windows']} per text "
            f"({windows['reach']} wordpieces; past them a text is cut)") if windows else ""
    return (f"Long texts ({how}): the window is {report['window']} wordpieces (--max-seq-length {max_seq_length} "
            f"less [CLS]/[SEP]){read}: " + "; ".join(parts) + ".")


def log_truncation(report: dict, max_seq_length: int, notes: list, log=print, unit: str = "rows") -> None:
    """Says how much is cut as a data note: in the log, and in the run's data notes (metrics.json)."""
    note = truncation_note(report, max_seq_length, unit)
    notes.append(note)
    log(f"data: {note}")
