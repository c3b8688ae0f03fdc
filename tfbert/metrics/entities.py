"""Entity-level NER metrics with seqeval (CoNLL semantics), plus token accuracy, and their text report.

An entity counts as found only if its type and its exact word span both match. seqeval's default (non-strict)
mode reads an I-TYPE that does not continue a TYPE entity as the start of a new one, as conlleval does.
No TensorFlow here.
"""
from __future__ import annotations

__all__ = ["entity_metrics", "entity_f1", "format_ner_report"]


def _check(y_true: list[list[str]], y_pred: list[list[str]]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true sentences but {len(y_pred)} predicted ones.")
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted ones.")


def entity_f1(y_true: list[list[str]], y_pred: list[list[str]]) -> float:
    """Micro-averaged entity F1 (what early stopping watches)."""
    from seqeval.metrics import f1_score
    _check(y_true, y_pred)
    return float(f1_score(y_true, y_pred, zero_division=0))


def entity_metrics(y_true: list[list[str]], y_pred: list[list[str]]) -> dict:
    """{"sentences", "tokens", "token_accuracy", "micro", "macro", "per_type"}: micro/macro and per_type[type]
    hold precision, recall, f1 and support (true entities). Macro averages over the types in y_true or y_pred."""
    from seqeval.metrics import classification_report
    _check(y_true, y_pred)
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)

    def row(r):
        return {"precision": float(r["precision"]), "recall": float(r["recall"]), "f1": float(r["f1-score"]),
                "support": int(r["support"])}

    n_tokens = sum(len(t) for t in y_true)
    correct = sum(a == b for t, p in zip(y_true, y_pred) for a, b in zip(t, p))
    types = sorted(k for k in report if not k.endswith(" avg"))
    return {"sentences": len(y_true), "tokens": n_tokens, "token_accuracy": correct / max(n_tokens, 1),
            "micro": row(report["micro avg"]) if "micro avg" in report else None,
            "macro": row(report["macro avg"]) if "macro avg" in report else None,
            "per_type": {t: row(report[t]) for t in types}}


def format_ner_report(m: dict) -> str:
    w = max([len("type"), len("micro avg"), *(len(t) for t in m["per_type"])])
    lines = [f"sentences={m['sentences']}  tokens={m['tokens']}  token_accuracy={m['token_accuracy']:.4f}", "",
             f"{'type':<{w}}  precision  recall      f1  support"]
    for name, r in [*m["per_type"].items(), ("micro avg", m["micro"]), ("macro avg", m["macro"])]:
        if r:
            lines.append(f"{name:<{w}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  {r['support']:7d}")
    return "\n".join(lines)
