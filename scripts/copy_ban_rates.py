"""How often real seekers would have met the seeker's copy ban (`socialsim.llm.nocopy`).

For each ESConv seeker turn (a speaker's consecutive utterances joined, cut to two sentences as a seeker line is),
tokenized by the embedded model's tokenizer: would `CopyBan` over its earlier seeker turns and the supporter turn
it answers have forbidden one of its tokens? Printed for several (run, prefix) settings, on train (where the
shipped `COPY_RUN` / `COPY_PREFIX` were chosen) and valid (reported). Then the same for the supporter's turns
(whole, as a reply is), with the ban its reply requests carry: over the seeker turn it answers and its own earlier
turns, at the shipped settings.

    python scripts/copy_ban_rates.py [--model qwen2.5-1.5b] [--split train valid]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from socialsim.agents.common import clean_utterance
from socialsim.llm.nocopy import CopyBan
from socialsim.recognize.strategy_build import speaker_turns, split_dialogs

ESCONV = Path(__file__).resolve().parents[2] / "shared" / "data" / "esconv" / "splits"
SETTINGS = [(6, 3), (7, 4), (8, 3), (8, 4), (8, 5), (10, 4), (8, 99), (99, 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--split", nargs="+", default=["train", "valid"])
    ap.add_argument("--esconv", type=Path, default=ESCONV)
    args = ap.parse_args()
    from llama_cpp import Llama

    from socialsim.llm.models import model_file

    llm = Llama(model_path=str(model_file(args.model)), vocab_only=True, verbose=False)

    def tok(text: str) -> list[int]:
        return llm.tokenize((" " + text.strip()).encode("utf-8"), add_bos=False, special=False)

    for split in args.split:
        cases = []  # (tokens of the seeker turn, sources)
        replies = []  # (tokens of the supporter turn, sources)
        for dialog in split_dialogs(args.esconv / f"{split}.jsonl"):
            earlier: list[list[int]] = []
            own: list[list[int]] = []
            before: list[int] | None = None
            seeker: list[int] | None = None
            for speaker, text in speaker_turns(dialog):
                if speaker == "supporter":
                    before = tok(text)
                    replies.append((before, [*([seeker] if seeker else []), *own]))
                    own.append(before)
                    continue
                seeker = tok(text)
                line = tok(clean_utterance(text, max_sentences=2))
                cases.append((line, [*earlier, *([before] if before else [])]))
                earlier.append(tok(text))
        print(f"{split}: {len(cases)} seeker turns")
        for run, prefix in SETTINGS:
            hit = sum(CopyBan(src, run, prefix).first_copy(line) is not None for line, src in cases)
            print(f"  run {run:>2} prefix {prefix:>2}: {hit:>4} turns would meet the ban ({hit / len(cases):.1%})")
        hit = sum(CopyBan(src).first_copy(line) is not None for line, src in replies)
        print(f"{split}: {len(replies)} supporter turns; {hit} would meet the ban ({hit / len(replies):.1%})")


if __name__ == "__main__":
    main()
