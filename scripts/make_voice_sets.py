"""Generates the model-written supporter replies the role check is measured (and partly trained) on.

    python scripts/make_voice_sets.py --model smollm2-135m --split train --n 400 --seed 7 --out train_smollm2-135m.jsonl
    python scripts/make_voice_sets.py --model smollm2-135m --split train --n 300 --seed 11 \
        --out train_smollm2-135m_2.jsonl
    python scripts/make_voice_sets.py --model qwen2.5-1.5b --split train --n 300 --seed 10 --max-tokens 60 \
        --out train_qwen2.5-1.5b.jsonl
    python scripts/make_voice_sets.py --model smollm2-135m --split valid --n 250 --seed 8 --limit 150 \
        --out test_smollm2-135m.jsonl
    python scripts/make_voice_sets.py --model qwen2.5-1.5b --split valid --n 250 --seed 9 --limit 60 \
        --max-tokens 60 --out test_qwen2.5-1.5b.jsonl

(the shipped sets; a session had the time for these sizes; the second and third were made on 2026-12-06,
in 9 and 33 minutes on 2 shared cores). Resumable: a run appends after the lines already in the file.

Each reply answers a real seeker turn of an ESConv split (sampled with ``--seed``) under one of a few
supporter system prompts, with the embedded model in process (llama.cpp). A seeker model that slips
into the supporter's voice writes lines like these, so the role check must catch them. Written to
``src/socialsim/recognize/data/voice/`` (default folder): one JSON object a line with the model, the
reply, the prompt variant and where its seeker turn is (split, dialogue index, utterance index); the
ESConv text itself is not copied. Sets made from the train split may be trained on; sets made from
valid are test data only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from socialsim.llm.base import ChatRequest  # noqa: E402
from socialsim.llm.local import LocalBackend  # noqa: E402

SPLITS = ROOT.parent / "shared" / "data" / "esconv" / "splits"
OUT = ROOT / "src" / "socialsim" / "recognize" / "data" / "voice"
SYSTEMS = (
    "You are a warm, supportive listener in an emotional-support chat. Reply to the person in one to three "
    "sentences.",
    "You are a counsellor trained in emotional support. Answer the help-seeker's last message briefly and kindly.",
    "You are a friend who listens well. Respond to what they just told you in a short chat message.",
    "You are an emotional-support chatbot. Write your next reply to the user: short, caring, and helpful.",
)


def seeker_turns(split: str) -> list[tuple[int, int, str]]:
    out = []
    with (SPLITS / f"{split}.jsonl").open(encoding="utf-8") as fh:
        for di, line in enumerate(fh):
            for ui, u in enumerate(json.loads(line)["dialog"]):
                if u["speaker"] == "usr" and len(u["text"].split()) >= 6:
                    out.append((di, ui, u["text"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="embedded model name (smollm2-135m, qwen2.5-1.5b)")
    ap.add_argument("--split", choices=["train", "valid"], required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True, help="file name in the output folder")
    ap.add_argument("--folder", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="stop after this many replies of the sample")
    ap.add_argument("--max-tokens", type=int, default=80)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    turns = rng.sample(seeker_turns(a.split), a.n)
    backend = LocalBackend(model_name=a.model, n_threads=a.threads)
    a.folder.mkdir(parents=True, exist_ok=True)
    path = a.folder / a.out
    done = sum(1 for _ in path.open()) if path.exists() else 0  # resumable: appends after what is there
    t0 = time.time()
    with path.open("a", encoding="utf-8") as fh:
        for k, (di, ui, text) in enumerate(turns):
            if k < done:
                continue
            if a.limit is not None and k >= a.limit:
                break
            variant = k % len(SYSTEMS)
            req = ChatRequest.of(
                [{"role": "system", "content": SYSTEMS[variant]}, {"role": "user", "content": text}],
                temperature=0.8, max_tokens=a.max_tokens, seed=a.seed * 100003 + k,
            )
            reply = " ".join(backend.complete_sync(req).text.split())
            rec = {"model": a.model, "text": reply, "variant": variant, "split": a.split, "dialog": di, "utterance": ui}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            if k % 10 == 0:
                print(f"{k + 1}/{len(turns)} {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
