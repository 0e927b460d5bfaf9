"""Training data for a supporter chatbot: SFT examples from dialogues, in TRL's conversational
*prompt–completion* format.

One example per supporter turn of every ``ok`` dialogue::

    {"prompt": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}, ...],
     "completion": [{"role": "assistant", "content": "[Question] How long has this been going on?"}],
     "dialogue_id": ..., "turn": ..., "strategy": ...}

``prompt`` holds the system prompt and the history (seeker = ``user``, supporter = ``assistant``,
consecutive turns of one speaker merged); ``completion`` holds the one supporter reply the model
learns. The trainer puts loss on the completion only, so no history turn is ever trained on.

**One tag convention everywhere.** A reply may carry a controllable prefix: the strategy in brackets,
as in ESConv's training format (``[Question] ...``), and/or the supporter's thought as JSON in a
``<thought>`` tag before it. Earlier supporter turns in the history carry *the same* prefix as the
target (tagged history with tagged targets, plain with plain), and the plain chatbot
(`socialsim.agents.plain`) renders its own earlier replies the same way at inference, so the model
sees one format in training and in use.

**What is left out.** By default no example targets a reply the model did not write or a reply to a seeker
line that is not a real seeker line: a crisis-protocol reply (``risk_reason`` 'protocol:…', the fixed protocol
text) or a reply the safety screen replaced ('output_screen:…') is never a target, and no example's history
holds a seeker slip or fixed fallback line (`Turn.slip`, `Turn.role_fallback`: a supporter reply to them is not
learned either). `export_sft` counts what it left out, by reason (`LEFT_OUT_REASONS`); ``include_flagged``
keeps them all.

Splits are by dialogue (no dialogue leaks across them) and named as on the Hugging Face Hub:
``train`` and ``validation``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from socialsim.chat_format import DEFAULT_SYSTEM_PROMPT, chat_history
from socialsim.errors import UserError
from socialsim.io import write_jsonl_records
from socialsim.schema import Dialogue

#: The split names, as on the Hugging Face Hub.
SPLITS = ("train", "validation")

LEFT_OUT_REASONS = ("protocol", "output_screen", "after_seeker_slip")
"""Why a supporter turn makes no example by default (`left_out_reason`): the fixed crisis-protocol reply, a reply
the safety screen replaced, or a reply whose history holds a seeker slip or fixed fallback line."""


def left_out_reason(d: Dialogue, i: int) -> str | None:
    """Why supporter turn ``i`` of ``d`` makes no example unless asked (one of `LEFT_OUT_REASONS`), or None."""
    reason = d.turns[i].risk_reason or ""
    if reason.startswith("protocol:"):
        return "protocol"
    if reason.startswith("output_screen:"):
        return "output_screen"
    if any(t.speaker == "seeker" and (t.slip is not None or t.role_fallback) for t in d.turns[:i]):
        return "after_seeker_slip"
    return None


def sft_examples(
    d: Dialogue,
    *,
    with_strategy: bool = True,
    with_thought: bool = False,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    include_flagged: bool = False,
    left_out: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Prompt–completion examples (``{"prompt", "completion", "dialogue_id", "turn", "strategy"}``),
    one per supporter turn that follows at least one seeker turn, except the turns `left_out_reason` names
    (unless ``include_flagged``); those are counted by reason into ``left_out``."""
    if d.status != "ok":
        return
    for i, t in enumerate(d.turns):
        if t.speaker != "supporter" or not any(x.speaker == "seeker" for x in d.turns[:i]):
            continue
        why = None if include_flagged else left_out_reason(d, i)
        if why is not None:
            if left_out is not None:
                left_out[why] = left_out.get(why, 0) + 1
            continue
        history = chat_history(d.turns[:i], with_strategy=with_strategy, with_thought=with_thought)
        target = chat_history([t], with_strategy=with_strategy, with_thought=with_thought)
        yield {
            "prompt": [{"role": "system", "content": system_prompt}, *history],
            "completion": target,
            "dialogue_id": d.id,
            "turn": i,
            "strategy": t.strategy.value if t.strategy else None,
        }


def in_valid(dialogue_id: str, valid_fraction: float, seed: int = 0) -> bool:
    h = hashlib.sha256(f"{seed}:{dialogue_id}".encode()).digest()
    return int.from_bytes(h[:4], "big") / 2**32 < valid_fraction


def export_sft(
    dialogues: Iterable[Dialogue],
    out: str | Path,
    *,
    with_strategy: bool = True,
    with_thought: bool = False,
    valid_fraction: float = 0.1,
    seed: int = 0,
    formats: tuple[str, ...] = ("sft",),
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    source: dict[str, Any] | None = None,
    include_flagged: bool = False,
) -> dict[str, Any]:
    """Write ``train.jsonl``/``validation.jsonl`` into `out`; with ``parquet`` also
    ``train.parquet``/``validation.parquet``; with ``hf`` the Hugging Face Hub layout
    (``data/<split>-00000-of-00001.parquet`` and a ``README.md`` dataset card, see
    `socialsim.corpus.hf_card`), loadable with ``datasets.load_dataset(out)``. `source` describes
    where the dialogues came from (run config, persona bank), for the card.

    Crisis-protocol replies, replies the safety screen replaced and replies after a seeker slip or fallback line
    make no example unless ``include_flagged`` (the returned ``left_out_examples`` counts them by reason).

    Returns counts. Refuses to write into a folder that already holds an export.
    """
    if not 0 <= valid_fraction < 1:
        raise UserError(f"--valid-fraction {valid_fraction}: must be at least 0 and below 1")
    out = Path(out)
    if (out / "train.jsonl").exists():
        raise UserError(f"{out}: already holds an export (train.jsonl); choose a new --out")
    kept: list[Dialogue] = []
    splits: dict[str, list[dict[str, Any]]] = {k: [] for k in SPLITS}
    n_dialogues = dict.fromkeys(SPLITS, 0)
    skipped = 0
    left_out = dict.fromkeys(LEFT_OUT_REASONS, 0)
    for d in dialogues:
        if d.status != "ok":
            skipped += 1
            continue
        kept.append(d)
        split = "validation" if in_valid(d.id, valid_fraction, seed) else "train"
        n_dialogues[split] += 1
        splits[split].extend(
            sft_examples(
                d,
                with_strategy=with_strategy,
                with_thought=with_thought,
                system_prompt=system_prompt,
                include_flagged=include_flagged,
                left_out=left_out,
            )
        )
    if not splits["train"]:
        raise UserError("no training examples: the corpus has no ok dialogue with a supporter turn")
    datasets = None
    if "parquet" in formats or "hf" in formats:
        try:
            import datasets
        except ImportError:
            raise UserError("parquet/hf exports need the [train] extra: pip install -e '.[train]'") from None
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        write_jsonl_records(out / f"{name}.jsonl", rows)
    meta = {
        "format": "prompt-completion (TRL conversational)",
        "examples": {k: len(v) for k, v in splits.items()},
        "dialogues": n_dialogues,
        "skipped_failed_dialogues": skipped,
        "left_out_examples": {**left_out, "total": sum(left_out.values())},
        "include_flagged": include_flagged,
        "with_strategy": with_strategy,
        "with_thought": with_thought,
        "history_prefix": "same as targets",
        "valid_fraction": valid_fraction,
        "seed": seed,
        "system_prompt": system_prompt,
    }
    if datasets is not None:
        dd = {k: datasets.Dataset.from_list(v) for k, v in splits.items() if v}
        if "parquet" in formats:
            for k, ds in dd.items():
                ds.to_parquet(str(out / f"{k}.parquet"))
        if "hf" in formats:
            from socialsim.corpus.hf_card import write_hub_layout

            write_hub_layout(out, dd, kept, meta, source or {})
    (out / "export.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
