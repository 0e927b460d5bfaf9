"""Probe: does the 1.5B model slip out of the seeker's role less when it continues a written transcript (a plain
text completion, no chat template) than when it is asked for the seeker's line in a chat?

For every seeker turn of a finished run (not the goodbyes), the history before it is given to the model twice,
one attempt each, at the seeker's temperature: once as the seeker's chat prompt (`Seeker.messages`, what
`simulate` sends) and once as a transcript that ends in the persona's name and a colon. Both lines go through the
seeker's own checks (`Seeker.judge`). Prints how many first attempts each way a check rejected, and writes every
line with its verdict to ``--out``.

    python scripts/seeker_completion_probe.py RUN [--limit 60] [--out probe.json]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from copy_ban_probe import summarize, verdict

from socialsim.agents.common import clean_utterance, derive_seed
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import Seeker, known_facts, voice_lines
from socialsim.llm.models import model_file
from socialsim.schema import Dialogue, Turn

LAYER_NOTE = [
    "{n} is still guarded: only hints at how things feel, no details yet.",
    "{n} is opening up and shares one concrete detail, but keeps what worries them most to themself.",
    "{n} trusts the supporter now and can say what really worries them underneath.",
]


def transcript_prompt(seeker: Seeker, history: list[Turn], layer: int) -> str:
    p = seeker.persona
    first = p.name.split()[0]
    lines = [
        f"Transcript of a text chat on an emotional-support website. {p.name} came to talk about a problem in "
        f"{first}'s own life; a volunteer supporter listens. {first} writes short messages (one or two sentences) "
        f"about {first}'s own feelings and life, and never gives advice or comforts the supporter.",
        "",
        f"About {first}: " + "; ".join(voice_lines(p)) + ".",
        f"What {first} may bring up by now: " + " ".join(f"{label}: {text}." for label, text in known_facts(p, layer)),
        LAYER_NOTE[min(layer, 2)].format(n=first),
        "",
        f"Supporter: {seeker.opening_line().strip()}",
    ]
    for t in history:
        lines.append(f"{first if t.speaker == 'seeker' else 'Supporter'}: {t.text}")
    lines.append(f"{first}:")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--out", type=Path, default=Path("seeker_probe.json"))
    ap.add_argument("--model", default="qwen2.5-1.5b")
    args = ap.parse_args()
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_file(args.model)), n_ctx=4096, n_threads=2, verbose=False)
    prompts = Prompts()
    rows = []
    counts: dict[str, Counter[str]] = {"chat": Counter(), "transcript": Counter()}
    t0 = time.time()
    for line in (args.run / "dialogues.jsonl").read_text().splitlines():
        d = Dialogue.model_validate_json(line)
        seeker = Seeker(None, d.persona, prompts, seed=d.seed)  # type: ignore[arg-type]
        for i, turn in enumerate(d.turns):
            if turn.speaker != "seeker" or len(rows) >= args.limit:
                continue
            history = d.turns[:i]
            if i == len(d.turns) - 1 and d.end_reason == "goodbye":
                continue
            layer = turn.disclosure_layer or 0
            before = next((t.text for t in reversed(history) if t.speaker == "supporter"), None)
            if not history:
                before = seeker.opening_line().strip()
            earlier = [t.text for t in history if t.speaker == "seeker"]
            seed = derive_seed(d.seed, "probe", d.id, i)
            out = llm.create_chat_completion(
                messages=seeker.messages(history, layer, False),  # type: ignore[arg-type]
                temperature=0.8, max_tokens=80, seed=seed,
            )
            chat_text = clean_utterance(out["choices"][0]["message"]["content"] or "", max_sentences=2)  # type: ignore[index]
            raw = llm.create_completion(
                transcript_prompt(seeker, history, layer), temperature=0.8, max_tokens=80, seed=seed, stop=["\n"]
            )
            tr_text = clean_utterance(raw["choices"][0]["text"], max_sentences=2)  # type: ignore[index]
            row = {"dialogue": d.id, "turn": i, "layer": layer, "before": before}
            for kind, text in (("chat", chat_text), ("transcript", tr_text)):
                row[kind] = verdict(seeker, text, before, layer, earlier)
                counts[kind][row[kind]["verdict"]] += 1
            rows.append(row)
            print(f"[{len(rows)} {time.time() - t0:.0f}s] chat {row['chat']['verdict']:8} | "
                  f"transcript {row['transcript']['verdict']:8} | {tr_text[:90]}", flush=True)
    summarize(rows, counts, args.out)


if __name__ == "__main__":
    main()
