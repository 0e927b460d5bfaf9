"""The Hugging Face Hub layout of an SFT export: ``data/<split>-00000-of-00001.parquet`` plus a
``README.md`` dataset card, so ``datasets.load_dataset(folder)`` (or ``huggingface-cli upload``)
works as for any Hub dataset.

The card (template ``corpus/templates/dataset_card.md.j2``) says how the data was made (the run's
config, the models, the persona bank), what is in it (counts, the strategy distribution) and under
which licence: material derived from ESConv or SocialSim's SSConv (dialogues read from them, personas
imported from them) is CC BY-NC 4.0, and the card says so.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from socialsim.io import atomic_write_text
from socialsim.schema import Dialogue, Strategy
from socialsim.templating import make_env

#: Dialogue backends and persona-id prefixes that mark material taken from a CC BY-NC 4.0 corpus.
NC_BACKENDS = {"esconv": "ESConv", "ssconv": "SSConv (SocialSim)"}
NC_PERSONA_PREFIXES = {"esconv-": "ESConv", "socialsim-": "SSConv (SocialSim)", "esceval-": "ESC-Eval role cards"}


def derived_from(dialogues: list[Dialogue]) -> list[str]:
    """The CC BY-NC corpora these dialogues (or their personas) come from, sorted."""
    found = set()
    for d in dialogues:
        if d.backend in NC_BACKENDS:
            found.add(NC_BACKENDS[d.backend])
        for prefix, name in NC_PERSONA_PREFIXES.items():
            if d.persona_id.startswith(prefix):
                found.add(name)
    return sorted(found)


def describe_source(path: Path) -> dict[str, Any]:
    """What the card says about where the dialogues came from: a run's config, its hash, persona bank
    and environment (from ``manifest.json``), or just the file for other corpora."""
    manifest = path / "manifest.json"
    if path.is_dir() and manifest.is_file():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        cfg = m.get("config") or {}
        return {
            "kind": "run",
            "path": str(path),
            "config": cfg,
            "config_hash": m.get("config_hash"),
            "personas": cfg.get("personas"),
            "personas_sha256": cfg.get("personas_sha256"),
            "environment": m.get("environment"),
        }
    return {"kind": "corpus file", "path": str(path)}


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def card_facts(dialogues: list[Dialogue], meta: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Everything the card shows, as plain data (also written to ``export.json`` under ``card``)."""
    supporter = [t for d in dialogues for t in d.turns if t.speaker == "supporter"]
    strategies = Counter(t.strategy.value if t.strategy else "(none)" for t in supporter)
    order = [s.value for s in Strategy] + ["(none)"]
    n_sup = max(1, len(supporter))
    derived = derived_from(dialogues)
    models = Counter(f"{d.backend}:{d.model}" for d in dialogues)
    return {
        "licence": "cc-by-nc-4.0" if derived else "other",
        "derived_from": derived,
        "models": dict(models.most_common()),
        "personas_distinct": len({d.persona_id for d in dialogues}),
        "dialogues": len(dialogues),
        "turns": sum(len(d.turns) for d in dialogues),
        "supporter_turns": len(supporter),
        "strategies": [
            {"strategy": s, "turns": strategies[s], "share": round(100 * strategies[s] / n_sup, 1)}
            for s in order
            if strategies[s]
        ],
        "examples": meta["examples"],
        "split_dialogues": meta["dialogues"],
        "size_category": _size_category(sum(meta["examples"].values())),
        "source": source,
    }


def write_hub_layout(
    out: Path, splits: dict[str, Any], dialogues: list[Dialogue], meta: dict[str, Any], source: dict[str, Any]
) -> Path:
    """Write ``data/*.parquet`` and ``README.md`` into `out`; returns the card's path."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, ds in splits.items():
        ds.to_parquet(str(data / f"{name}-00000-of-00001.parquet"))
    facts = card_facts(dialogues, meta, source)
    meta["card"] = {k: v for k, v in facts.items() if k != "source"}
    text = (
        make_env("socialsim.corpus")
        .get_template("dataset_card.md.j2")
        .render(
            facts=facts,
            meta=meta,
            splits=list(splits),
            config_json=json.dumps(source.get("config"), indent=2, ensure_ascii=False)
            if source.get("config")
            else None,
        )
    )
    card = out / "README.md"
    return atomic_write_text(card, text)
