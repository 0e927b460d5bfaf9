"""Training data for a supporter chatbot: chat-format SFT examples from dialogues.

One example per supporter turn of every ``ok`` dialogue: a system prompt, the history (seeker
= ``user``, supporter = ``assistant``) and the supporter's reply as the final ``assistant``
message. Optionally the reply carries a controllable prefix: the strategy in brackets, as in
ESConv's training format (``[Question] How long has this been going on?``), and/or the
supporter's thought as JSON in a ``<thought>`` tag before it. Train/valid split by dialogue, so
no dialogue leaks across the split.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.schema import Dialogue, Strategy, parse_strategy

DEFAULT_SYSTEM_PROMPT = (
    "You are a warm, caring emotional supporter. Listen first, reflect feelings, ask gentle questions, "
    "and offer suggestions only when the person is ready. Reply in 1 to 3 short sentences."
)
_PREFIX = re.compile(r"^\s*(?:<thought>(?P<thought>.*?)</thought>\s*)?(?:\[(?P<strategy>[^\]]{2,40})\]\s*)?", re.S)


def format_target(
    text: str, strategy: Strategy | None, thought: dict[str, Any] | None, *, with_strategy: bool, with_thought: bool
) -> str:
    out = ""
    if with_thought and thought is not None:
        out += "<thought>" + json.dumps(thought, ensure_ascii=False) + "</thought> "
    if with_strategy and strategy is not None:
        out += f"[{strategy.value}] "
    return out + text


def split_prefix(text: str) -> tuple[str, Strategy | None, dict[str, Any] | None]:
    """Undo `format_target` on a model's output: (reply, strategy or None, thought or None)."""
    m = _PREFIX.match(text)
    thought = strategy = None
    if m and m.group("thought"):
        try:
            thought = json.loads(m.group("thought"))
        except json.JSONDecodeError:
            thought = None
    if m and m.group("strategy"):
        try:
            strategy = parse_strategy(m.group("strategy"))
        except ValueError:
            strategy = None
    reply = text[m.end() :] if m and (m.group("thought") or strategy) else text
    return reply.strip(), strategy, thought


def sft_examples(
    d: Dialogue,
    *,
    with_strategy: bool = True,
    with_thought: bool = False,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> Iterator[dict[str, Any]]:
    """Chat-format examples (``{"messages": [...], "dialogue_id", "turn", "strategy"}``)."""
    if d.status != "ok":
        return
    history: list[dict[str, str]] = []
    for i, t in enumerate(d.turns):
        role = "user" if t.speaker == "seeker" else "assistant"
        if t.speaker == "supporter" and history:
            target = format_target(
                t.text,
                t.strategy,
                t.thought.model_dump(mode="json") if t.thought else None,
                with_strategy=with_strategy,
                with_thought=with_thought,
            )
            yield {
                "messages": [
                    {"role": "system", "content": system_prompt},
                    *history,
                    {"role": "assistant", "content": target},
                ],
                "dialogue_id": d.id,
                "turn": i,
                "strategy": t.strategy.value if t.strategy else None,
            }
        if history and history[-1]["role"] == role:
            history[-1] = {"role": role, "content": history[-1]["content"] + " " + t.text}
        else:
            history.append({"role": role, "content": t.text})


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
    formats: tuple[str, ...] = ("jsonl",),
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> dict[str, Any]:
    """Write ``train.jsonl``/``valid.jsonl`` (and parquet / HF ``datasets`` on request) into `out`.

    Returns counts. Refuses to write into a folder that already holds an export.
    """
    if not 0 <= valid_fraction < 1:
        raise UserError(f"--valid-fraction {valid_fraction}: must be at least 0 and below 1")
    out = Path(out)
    if (out / "train.jsonl").exists():
        raise UserError(f"{out}: already holds an export (train.jsonl); choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "valid": []}
    n_dialogues = {"train": 0, "valid": 0}
    skipped = 0
    for d in dialogues:
        if d.status != "ok":
            skipped += 1
            continue
        split = "valid" if in_valid(d.id, valid_fraction, seed) else "train"
        n_dialogues[split] += 1
        splits[split].extend(
            sft_examples(d, with_strategy=with_strategy, with_thought=with_thought, system_prompt=system_prompt)
        )
    if not splits["train"]:
        raise UserError("no training examples: the corpus has no ok dialogue with a supporter turn")
    for name, rows in splits.items():
        tmp = out / f"{name}.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        tmp.replace(out / f"{name}.jsonl")
    if "parquet" in formats or "hf" in formats:
        try:
            import datasets
        except ImportError:
            raise UserError("parquet/hf exports need the [train] extra: pip install -e '.[train]'") from None
        dd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items() if v})
        if "parquet" in formats:
            for k, ds in dd.items():
                ds.to_parquet(str(out / f"{k}.parquet"))
        if "hf" in formats:
            dd.save_to_disk(str(out / "hf"))
    meta = {
        "examples": {k: len(v) for k, v in splits.items()},
        "dialogues": n_dialogues,
        "skipped_failed_dialogues": skipped,
        "with_strategy": with_strategy,
        "with_thought": with_thought,
        "valid_fraction": valid_fraction,
        "seed": seed,
        "system_prompt": system_prompt,
    }
    (out / "export.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
