"""Would the strategy recognizer gain from training every encoder layer (LoRA adapters) instead of the top two?

    python scripts/strategy_lora_probe.py [--epochs 3] [--rank 16] [--limit N] [--out lora_probe.json]

The shipped recognizer (`socialsim build strategy-recognizer`) trains all-MiniLM-L6-v2's top two layers and a
head, with the four lower layers frozen; a full fine-tune of all six layers would not fit the 10 MB the shipped
file may take (float16: about 44 MB). LoRA adapters on every linear layer of all six layers do fit (rank 16:
about 1.3 MB). This probe trains that on the same data with the same input (reply, the two utterances before it),
class weights and schedule, and prints valid accuracy, macro-F1, kappa and per-strategy F1 after each epoch, next
to the shipped recognizer's. Train: ESConv ``splits/train.jsonl``; scored on ``splits/valid.jsonl`` only (never
trained on). It writes no model: a probe, to decide whether the build should change.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model

from socialsim.recognize.strategy import LABELS, build_head, encode_pairs, load_base, mean_pool
from socialsim.recognize.strategy_build import _scores, default_split, load_examples


def batches(tok, examples, idx_lists):  # noqa: ANN001, ANN201 - a script
    for idx in idx_lists:
        b = encode_pairs(tok, [examples[i][0] for i in idx], [examples[i][1] for i in idx],
                         padding=True, return_tensors="pt")
        yield idx, b, torch.tensor([examples[i][2] for i in idx])


def token_lengths(tok, examples) -> list[int]:  # noqa: ANN001
    """Each example's input length in tokens (`encode_pairs`, as trained on)."""
    return [len(ids) for ids in encode_pairs(tok, [e[0] for e in examples], [e[1] for e in examples])["input_ids"]]


def length_batches(lens: list[int], bs: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of examples of similar length ``lens`` (less padding); shuffled batch order when ``rng`` is given."""
    order = sorted(range(len(lens)), key=lambda i: (lens[i], rng.random() if rng else 0))
    out = [order[s : s + bs] for s in range(0, len(order), bs)]
    if rng:
        rng.shuffle(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=Path("lora_probe.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.time()
    tr, va = load_examples(default_split("train"), args.limit), load_examples(default_split("valid"), args.limit)
    tok, enc = load_base()
    for p in enc.parameters():
        p.requires_grad_(False)
    cfg = LoraConfig(
        r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.1, target_modules=["query", "key", "value", "dense"]
    )
    enc = inject_adapter_in_model(cfg, enc)
    lora = [p for n, p in enc.named_parameters() if "lora_" in n]
    for p in lora:
        p.requires_grad_(True)
    head = build_head(enc.config.hidden_size, len(LABELS))
    n_params = sum(p.numel() for p in lora) + sum(p.numel() for p in head.parameters())
    print(
        f"{len(tr)} train, {len(va)} valid; trainable {n_params:,} parameters ({2 * n_params / 1e6:.1f} MB as float16)",
        flush=True,
    )
    counts = Counter(e[2] for e in tr)
    mean = len(tr) / len(LABELS)
    weights = torch.tensor([(max(1, counts[k]) / mean) ** -0.5 for k in range(len(LABELS))])
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    opt = torch.optim.AdamW(
        [{"params": lora, "lr": args.lr}, {"params": head.parameters(), "lr": args.lr * 4}], weight_decay=0.01
    )
    bs = 32
    steps = args.epochs * math.ceil(len(tr) / bs)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm))
    )
    train_lens = token_lengths(tok, tr)
    valid_batches = length_batches(token_lengths(tok, va), 128, None)
    history = []
    for epoch in range(1, args.epochs + 1):
        enc.train()
        head.train()
        total, step = 0.0, 0
        for _, b, y in batches(tok, tr, length_batches(train_lens, bs, rng)):
            h = enc(**b).last_hidden_state
            loss = loss_fn(head(mean_pool(h, b["attention_mask"])), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lora + list(head.parameters()), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            step += 1
            if step % 50 == 0:
                print(f"  epoch {epoch} step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
        enc.eval()
        head.eval()
        ref: list[int] = []
        pred: list[int] = []
        probs: list[list[float]] = []
        with torch.inference_mode():
            for _, b, y in batches(tok, va, valid_batches):
                p = head(mean_pool(enc(**b).last_hidden_state, b["attention_mask"])).softmax(-1)
                ref += y.tolist()
                pred += p.argmax(-1).tolist()
                probs += p.tolist()
        sc = _scores(ref, pred, probs)
        per = {k: round(v["f1"], 3) for k, v in sc["per_strategy"].items()}
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(total / len(tr), 4),
                "seconds": round(time.time() - t0),
                **{k: sc[k] for k in ("accuracy", "macro_f1", "kappa", "top2_accuracy")},
                "f1": per,
            }
        )
        print(json.dumps(history[-1]), flush=True)
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "history": history}, indent=1))


if __name__ == "__main__":
    main()
