"""Fidelity of simulated corpora, for the report's ``fidelity`` section: declared vs realized strategy
(agreement, confusion matrix), the disclosure curve (mean layer the seeker speaks from after each supporter
turn), leak, drift and role-fallback rates per seeker turn, the appraisal distribution, and when the seeker
reached its core (supporter turn, 1-based). Corpora without these records (ESConv, human data) say so."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from socialsim.evaluate.readers import Corpus
from socialsim.evaluate.strategy_agreement import LABELS, agreement_pairs, label_scores
from socialsim.schema import Dialogue, ReplyAct, Strategy

if TYPE_CHECKING:
    from socialsim.evaluate.recognized import Recognized


def corpus_fidelity(
    dialogues: Sequence[Dialogue], pairs: Sequence[tuple[Strategy, Strategy]] | None = None
) -> dict[str, Any] | None:
    """The figures above for one corpus, or None when it records none of them. ``pairs``: (declared, realized)
    from the strategy recognizer (`socialsim.evaluate.recognized`); without them, the labels the turns store."""
    seeker = [t for d in dialogues for t in d.turns if t.speaker == "seeker"]
    if not any(t.disclosure_layer is not None for t in seeker):
        return None
    scores = label_scores(agreement_pairs(dialogues) if pairs is None else pairs)
    from socialsim.evaluate.recognized import llm_classifier_pairs

    llm = label_scores(llm_classifier_pairs(dialogues)) if pairs is not None else None
    by_turn: dict[int, list[int]] = {}
    core_at: list[int] = []
    for d in dialogues:
        k = 0
        reached = None
        for t in d.turns:
            if t.speaker == "supporter":
                k += 1
            elif k and t.disclosure_layer is not None:
                by_turn.setdefault(k, []).append(t.disclosure_layer)
                if t.disclosure_layer == 2 and reached is None:
                    reached = k
        if reached is not None:
            core_at.append(reached)
    appraisals = [t.appraisal for t in seeker if t.appraisal is not None]
    checked = [t for t in seeker if t.fidelity is not None]

    def rate(n: int, of: int) -> float | None:
        return round(n / of, 4) if of else None

    return {
        "dialogues": len(dialogues),
        "seeker_turns": len(seeker),
        "strategy_agreement": scores["accuracy"],
        "strategy_agreement_by_chance": scores["chance_agreement"],
        "strategy_kappa": scores["kappa"],
        "agreement_pairs": scores["n"],
        "realized_by": "stored labels" if pairs is None else "recognizer",
        "llm_classifier_agreement": llm["accuracy"] if llm else None,
        "llm_classifier_kappa": llm["kappa"] if llm else None,
        "confusion": scores["confusion"],
        "labels": [s.value for s in LABELS],
        "disclosure_curve": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_turn.items())},
        "leak_rate": rate(
            sum(1 for t in checked if t.fidelity.get("leak") or t.fidelity.get("leak_regenerations")), len(checked)
        ),
        "drift_rate": rate(sum(1 for t in checked if t.fidelity.get("drift")), len(checked)),
        "role_fallback_rate": rate(sum(1 for t in seeker if t.role_fallback), len(seeker)),
        "appraisals": len(appraisals),
        "felt_understood": {str(i): sum(1 for a in appraisals if a.felt_understood == i) for i in range(1, 6)},
        "reply_did": {act.value: sum(1 for a in appraisals if a.reply_did is act) for act in ReplyAct},
        "judged_or_rushed_rate": rate(sum(1 for a in appraisals if a.judged_or_rushed), len(appraisals)),
        "reached_core": rate(len(core_at), len(dialogues)),
        "mean_core_turn": round(sum(core_at) / len(core_at), 2) if core_at else None,
        "end_reasons": dict(Counter(d.end_reason or "none" for d in dialogues)),
    }


def fidelity_section(
    corpora: Sequence[Corpus], recognized: Mapping[str, Recognized] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report section as its template shows it (a ``note``, or a table, PNG figures and the
    definitions) and its data. With ``recognized`` (the strategy recognizer's labels by corpus name) the realized
    strategy is the recognizer's, and the confusion matrices are drawn in the recognized-strategies section."""
    from socialsim.evaluate.report import _figure, _png, confusion_png

    data = {
        c.name: corpus_fidelity(c.dialogues, recognized[c.name].pairs(c.dialogues) if recognized else None)
        for c in corpora
    }
    shown = {k: v for k, v in data.items() if v}
    if not shown:
        return {"note": "No fidelity records: only simulated corpora have them."}, data
    rows = [
        [label, *[("" if v.get(key) is None else v.get(key)) for v in shown.values()]]
        for label, key in (
            ("declared = realized strategy", "strategy_agreement"),
            ("… expected by chance from the two label distributions", "strategy_agreement_by_chance"),
            ("… Cohen's kappa", "strategy_kappa"),
            ("supporter turns with both labels", "agreement_pairs"),
            ("… realized strategy labelled by", "realized_by"),
            ("declared = the LLM classifier's stored label", "llm_classifier_agreement"),
            ("… its Cohen's kappa", "llm_classifier_kappa"),
            ("leak rate (seeker turns)", "leak_rate"),
            ("drift rate (seeker turns)", "drift_rate"),
            ("role-fallback rate (seeker turns)", "role_fallback_rate"),
            ("reached the core (share of dialogues)", "reached_core"),
            ("mean supporter turn at which the core opened", "mean_core_turn"),
            ("appraisals", "appraisals"),
            ("judged or rushed (share of appraisals)", "judged_or_rushed_rate"),
            ("end reasons", "end_reasons"),
        )
    ]
    images: list[dict[str, str]] = []
    for name, v in shown.items():
        if v["agreement_pairs"] and not recognized:
            png = confusion_png(v["confusion"], v["labels"], xlabel="realized (from the reply)",
                                ylabel="declared (in the thought)", title=name)
            images.append({"png": png, "alt": f"strategy confusion {name}"})
    fig = _figure(7, 3)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, v in shown.items():
        curve = v["disclosure_curve"]
        ax1.plot([int(k) for k in curve], list(curve.values()), marker="o", label=name)
        ax2.plot(range(1, 6), list(v["felt_understood"].values()), marker="s", label=name)
    ax1.set_xlabel("supporter turn")
    ax1.set_ylabel("mean layer (0 surface, 2 core)")
    ax1.set_ylim(-0.1, 2.1)
    ax2.set_xlabel("felt understood (appraisal)")
    ax2.set_ylabel("appraisals")
    ax1.legend(fontsize=7)
    images.append({"png": _png(fig), "alt": "disclosure curve and appraisal distribution"})
    view = {"note": "", "header": ["figure", *shown], "rows": rows, "images": images, "doc": (__doc__ or "").strip()}
    return view, data
