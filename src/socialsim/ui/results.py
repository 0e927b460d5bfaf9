"""A study's results: progress, win/tie/loss per dimension with an exact sign test and a Wilson
interval, inter-annotator agreement (Krippendorff's alpha, ordinal: B better < tie < A better, from
the `krippendorff` package), and exports as JSON and CSV."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from socialsim.ui.study import Study

_ORDINAL = {"b": 1.0, "tie": 2.0, "a": 3.0}


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact sign test (ties left out): P(a split at least this uneven | p = 0.5)."""
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        return None
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def agreement(answers: list[dict[str, Any]], dims: list[str], annotators: list[str]) -> dict[str, Any]:
    """Krippendorff's alpha (ordinal) per dimension and pooled over dimensions, on the items that
    have 2 or more answers. ``None`` (with a reason) when it is undefined."""
    by_item: dict[int, dict[str, dict[str, str]]] = {}
    for a in answers:
        by_item.setdefault(a["item"], {})[a["annotator"]] = a["choices"]
    shared = sorted(i for i, v in by_item.items() if len(v) >= 2)
    out: dict[str, Any] = {"items_with_2plus": len(shared), "per_dimension": {}, "pooled": None, "note": ""}
    if not shared:
        out["note"] = "no item has answers from 2 or more annotators yet"
        return out
    import numpy as np
    from krippendorff import alpha

    def matrix(columns: list[tuple[int, str]]) -> Any:
        m = np.full((len(annotators), len(columns)), np.nan)
        for j, (item, dim) in enumerate(columns):
            for r, name in enumerate(annotators):
                choice = by_item[item].get(name, {}).get(dim)
                if choice is not None:
                    m[r, j] = _ORDINAL[choice]
        return m

    def safe_alpha(m: Any) -> float | None:
        if len({v for v in m[~np.isnan(m)].tolist()}) < 2:
            return None  # one value only: no variation, alpha is undefined
        try:
            value = float(alpha(reliability_data=m, level_of_measurement="ordinal", value_domain=[1.0, 2.0, 3.0]))
        except (ValueError, ZeroDivisionError):
            return None
        return None if math.isnan(value) else value

    for dim in dims:
        out["per_dimension"][dim] = safe_alpha(matrix([(i, dim) for i in shared]))
    out["pooled"] = safe_alpha(matrix([(i, d) for i in shared for d in dims]))
    if out["pooled"] is None:
        out["note"] = "every answer on the shared items is the same: alpha is undefined"
    return out


def summarise(study: Study) -> dict[str, Any]:
    """Everything the admin page and the JSON export show."""
    answers = study.all_answers()
    dims = study.dimensions
    names = [n for _, n in study.annotators()]
    total = len(study.item_ids())
    done: dict[str, int] = {n: 0 for n in names}
    last: dict[str, str] = {}
    for a in answers:
        done[a["annotator"]] = done.get(a["annotator"], 0) + 1
        last[a["annotator"]] = max(last.get(a["annotator"], ""), a["created"])
    per_dim: dict[str, Any] = {}
    for dim in dims:
        w = sum(1 for a in answers if a["choices"].get(dim) == "a")
        t = sum(1 for a in answers if a["choices"].get(dim) == "tie")
        lo = sum(1 for a in answers if a["choices"].get(dim) == "b")
        ci = wilson(w, w + lo)
        per_dim[dim] = {
            "a_wins": w, "ties": t, "b_wins": lo, "answers": w + t + lo,
            "a_share_of_decisive": (w / (w + lo)) if w + lo else None,
            "ci95": list(ci) if ci else None, "sign_test_p": sign_test(w, lo),
        }  # fmt: skip
    m = study.meta
    return {
        "study": {"a": m["a"], "b": m["b"], "match": m["match"], "created": m["created"], "dimensions": dims,
                  "questions": m.get("questions", {}), "items": total, "path": str(study.path)},
        "progress": [{"annotator": n, "answered": done.get(n, 0), "items": total, "last_answer": last.get(n)}
                     for n in names],
        "results": per_dim,
        "agreement": agreement(answers, dims, names),
        "answers": len(answers),
    }  # fmt: skip


def export_json(study: Study) -> dict[str, Any]:
    return {**summarise(study), "answer_rows": study.all_answers()}


def export_csv(study: Study) -> str:
    """One row per answer: item, annotator, which system was on the left, a/b/tie per dimension, comment."""
    dims = study.dimensions
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["item", "key", "annotator", "left", "a_ref", "b_ref", *dims, "comment", "created"])
    for a in study.all_answers():
        w.writerow([a["item"], a["key"], a["annotator"], a["left"], a["a_ref"], a["b_ref"],
                    *(a["choices"].get(d, "") for d in dims), a["comment"], a["created"]])  # fmt: skip
    return buf.getvalue()


def write_export(study_path: str | Path, out: str | Path) -> None:
    """Write the export of a study file as JSON or CSV (by `out`'s suffix), atomically."""
    import json

    from socialsim.errors import UserError
    from socialsim.io import atomic_write_text

    out = Path(out)
    if out.suffix.lower() not in (".json", ".csv"):
        raise UserError(f"--out {out}: give a .json or .csv file")
    study = Study.open(study_path)
    try:
        text = export_csv(study) if out.suffix.lower() == ".csv" else json.dumps(export_json(study), indent=2) + "\n"
    finally:
        study.close()
    atomic_write_text(out, text)
