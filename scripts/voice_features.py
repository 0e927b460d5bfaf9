"""Out-of-fold check, on the train split only, of what the voice recognizer's features could be.

    python scripts/voice_features.py

Compares, at the build's weights (model-written replies 50, ESConv supporter turns 0.3) and its threshold rule
(train seeker turns rejected by rules OR score at most 2.5 %), the share of model-written train replies caught
out of fold with: the shipped features (MiniLM embeddings of the line and of ``before || line``); those plus the
strategy recognizer's pooled encoder output of the line (`socialsim.recognize.voice.strategy_features`: its
fine-tuned encoder, no context, as the build reads it). Reads no test data; reuses the build's caches.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from socialsim.agents.seeker import supporter_rules
from socialsim.recognize.strategy_build import default_split
from socialsim.recognize.voice import feature_texts
from socialsim.recognize.voice_build import _embed, _strategy, _threshold, esconv_utterances, kept_rules, model_replies


def main() -> None:
    train = default_split("train")
    tr = esconv_utterances(train)
    gen = [r for rows in model_replies("train_*.jsonl", train).values() for r in rows]
    rows = tr + gen
    pairs = [feature_texts(t, b) for t, b, _ in rows]
    base = np.hstack([_embed([p[0] for p in pairs[: len(tr)]]), _embed([p[1] for p in pairs[: len(tr)]])])
    if gen:
        base = np.vstack([base, np.hstack([_embed([p[0] for p in pairs[len(tr):]]),
                                           _embed([p[1] for p in pairs[len(tr):]])])])
    strat = _strategy([p[0] for p in pairs])
    y = np.array([r[2] for r in rows])
    is_gen = np.array([False] * len(tr) + [True] * len(gen))
    is_seeker = y == 0
    seekers = [r[0] for r in tr if r[2] == 0]
    rules = supporter_rules(kept_rules(seekers, 0.001)[0])
    rule_hit = np.array([rules.first(r[0]) is not None for r in rows])
    w = np.where(is_gen, 50.0, np.where(y == 1, 0.3, 1.0))
    variants = {"embeddings alone": base, "+ strategy encoder": np.hstack([base, strat])}
    for name, x in variants.items():
        oof = np.zeros(len(rows))
        for a, b in StratifiedKFold(5, shuffle=True, random_state=13).split(x, y + 2 * is_gen):
            m = LogisticRegression(C=1.0, max_iter=3000).fit(x[a], y[a], sample_weight=w[a])
            oof[b] = m.predict_proba(x[b])[:, 1]
        t = _threshold(oof[is_seeker], rule_hit[is_seeker], 0.025)
        caught = float(np.mean(rule_hit[is_gen] | (oof[is_gen] >= t)))
        sup = float(np.mean(rule_hit[(y == 1) & ~is_gen] | (oof[(y == 1) & ~is_gen] >= t)))
        print(f"{name:22} threshold {t}: model replies caught {caught:.3f} (n={int(is_gen.sum())}), "
              f"ESConv supporter turns caught {sup:.3f}", flush=True)


if __name__ == "__main__":
    main()
