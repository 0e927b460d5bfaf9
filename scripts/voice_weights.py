"""Out-of-fold check of the voice recognizer's sample weights on the train split only (no test data read).

    python scripts/voice_weights.py            # embeddings only
    python scripts/voice_weights.py --mlp      # an MLP (256 hidden units) instead of logistic regression

For each (weight of a model-written reply, weight of an ESConv supporter turn), 5-fold out-of-fold scores on
train: the threshold holding train seeker rejection (rules OR score) at 2.5 %, and the share of the
model-written train replies caught there. Reuses the build's cached embeddings.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from socialsim.agents.seeker import supporter_rules
from socialsim.recognize.strategy_build import default_split
from socialsim.recognize.voice import feature_texts
from socialsim.recognize.voice_build import _embed, _threshold, esconv_utterances, kept_rules, model_replies


def main() -> None:
    train = default_split("train")
    tr = esconv_utterances(train)
    gen = [r for rows in model_replies("train_*.jsonl", train).values() for r in rows]
    rows = tr + gen

    def feats(rs: list) -> np.ndarray:
        pairs = [feature_texts(t, b) for t, b, _ in rs]
        return np.hstack([_embed([p[0] for p in pairs]), _embed([p[1] for p in pairs])])

    x = np.vstack([feats(tr), feats(gen)])
    y = np.array([r[2] for r in rows])
    is_gen = np.array([False] * len(tr) + [True] * len(gen))
    is_seeker = y == 0
    seekers = [r[0] for r in tr if r[2] == 0]
    rules = supporter_rules(kept_rules(seekers, 0.001)[0])
    rule_hit = np.array([rules.first(r[0]) is not None for r in rows])
    mlp = "--mlp" in sys.argv
    grid = [(50.0, 0.3)] if mlp else [(g, s) for g in (5.0, 20.0, 50.0) for s in (1.0, 0.3)]
    for gw, sw in grid:
        if True:
            w = np.where(is_gen, gw, np.where(y == 1, sw, 1.0))
            oof = np.zeros(len(rows))
            for a, b in StratifiedKFold(5, shuffle=True, random_state=13).split(x, y + 2 * is_gen):
                if mlp:
                    from sklearn.neural_network import MLPClassifier

                    m = MLPClassifier((256,), alpha=1e-3, max_iter=30, random_state=13)
                    m.fit(x[a], y[a], sample_weight=w[a])
                else:
                    m = LogisticRegression(C=1.0, max_iter=2000).fit(x[a], y[a], sample_weight=w[a])
                oof[b] = m.predict_proba(x[b])[:, 1]
            t = _threshold(oof[is_seeker], rule_hit[is_seeker], 0.025)
            caught = float(np.mean(rule_hit[is_gen] | (oof[is_gen] >= t)))
            print(f"model weight {gw:5} supporter weight {sw}: threshold {t} caught {caught:.3f}", flush=True)


if __name__ == "__main__":
    main()
