#!/usr/bin/env bash
# Before/after of the SFT training format (issue 14), on one corpus, one base model, one set of
# ESConv dev contexts:
#   before = the code before #14 (chat "messages" examples, history replies untagged, loss on every
#            assistant message, ChatML forced), run from a checkout of commit 312583e;
#   after  = this checkout (prompt-completion examples, the [Strategy] prefix in history and target,
#            loss on the completion only, the base model's own chat template).
# Each side exports, trains (same steps, same seed, SmolLM2-135M embedded) and answers the same
# ESConv dev contexts with its own plain chatbot; both are scored with this checkout's response
# metrics. Tag rate = share of responses whose reply starts with a valid [Strategy] tag.
#
#   git worktree add /tmp/old-312583e 312583e
#   OLD_SRC=/tmp/old-312583e/src bash examples/sft_format_before_after.sh WORKDIR [STEP ...]
#
# STEPs (default: all, in this order): corpus export train-before train-after respond-before
# respond-after report. Every step skips what already exists, so a step cut short (e.g. by a time
# limit) continues when re-run. On a shared machine run model steps under the heavy lock, e.g.
#   flock /tmp/socialsim-heavy.lock bash examples/sft_format_before_after.sh W corpus export train-before
# The corpus is simulated with the old code: the old exporter cannot read runs written by newer code
# (its schema forbids the fields added since), while the new exporter reads old runs.
# On a busy 2-core machine set OMP_NUM_THREADS=1: measured 2026-12-02 at load 6-8, one LoRA step took
# 22-37 s with one thread and 42-89 s with torch's default two (3.9 s on a quiet machine).
set -euo pipefail
W=${1:?usage: OLD_SRC=.../src sft_format_before_after.sh WORKDIR [STEP ...]}
shift
OLD_SRC=${OLD_SRC:?set OLD_SRC to the src folder of a checkout of 312583e}
NEW_SRC=${NEW_SRC:-$(cd "$(dirname "$0")/.." && pwd)/src}
TSV=${TSV:-$(cd "$(dirname "$0")/.." && pwd)/../shared/data/esconv/devWithStrategy_short.tsv}
N_DIALOGUES=${N_DIALOGUES:-24}
MAX_TURNS=${MAX_TURNS:-4}
STEPS=${STEPS:-60}
N_CONTEXTS=${N_CONTEXTS:-60}
export HF_HUB_OFFLINE=1
mkdir -p "$W"
W=$(cd "$W" && pwd)

old() { PYTHONPATH="$OLD_SRC" python -m socialsim.cli "$@"; }
new() { PYTHONPATH="$NEW_SRC" python -m socialsim.cli "$@"; }
timed() {  # timed NAME CMD...: run CMD, append "NAME<TAB>seconds<TAB>rc" to WORKDIR/times.tsv
  local name=$1 start rc=0
  shift
  start=$(date +%s)
  "$@" || rc=$?
  printf '%s\t%s\t%s\n' "$name" "$(($(date +%s) - start))" "$rc" >>"$W/times.tsv"
  return "$rc"
}

step_corpus() {
  if [ -f "$W/corpus/manifest.json" ]; then
    timed corpus old simulate --resume "$W/corpus" -q
  else
    timed corpus old simulate --n "$N_DIALOGUES" --max-turns "$MAX_TURNS" --out "$W/corpus" -q
  fi
}
step_export() {
  [ -f "$W/sft-before/train.jsonl" ] || timed export-before old export "$W/corpus" --format sft \
    --out "$W/sft-before" --valid-fraction 0.15
  [ -f "$W/sft-after/train.jsonl" ] || timed export-after new export "$W/corpus" --format sft \
    --out "$W/sft-after" --valid-fraction 0.15
}
train() {  # train SIDE CLI: SIDE's code trains on SIDE's export
  [ -f "$W/lora-$1/train.json" ] || timed "train-$1" "$2" train --data "$W/sft-$1" --out "$W/lora-$1" \
    --max-steps "$STEPS" --save-steps 20 --base-model embedded
}
respond() {  # respond SIDE CLI: SIDE's own plain chatbot (its history rendering) answers the contexts
  [ -f "$W/responses-$1.jsonl" ] || timed "respond-$1" "$2" chatbot-eval responses \
    --contender "tuned=hf:$W/lora-$1/merged:plain" --contexts "$TSV" --limit "$N_CONTEXTS" \
    --out "$W/responses-$1.jsonl"
}
step_report() {
  for side in before after; do
    new respond-metrics "$W/responses-$side.jsonl" --references "$TSV" --out "$W/metrics-$side.json" >/dev/null
  done
  PYTHONPATH="$NEW_SRC" python - "$W" "$STEPS" <<'EOF'
import json, sys
from pathlib import Path

w, steps = Path(sys.argv[1]), sys.argv[2]
times = {}
for line in (w / "times.tsv").read_text().splitlines():
    name, secs, rc = line.split("\t")
    if rc == "0":
        times[name] = times.get(name, 0) + int(secs)

def tagged_share(side):  # supervised replies that carry a [Strategy] tag, in the training file
    from socialsim.chat_format import split_prefix
    sup = tag = 0
    for line in (w / f"sft-{side}" / "train.jsonl").read_text().splitlines():
        ex = json.loads(line)
        msgs = ex.get("completion") or [m for m in ex["messages"] if m["role"] == "assistant"]
        for m in msgs:
            sup += 1
            tag += split_prefix(m["content"])[1] is not None
    return tag, sup

print("| format | supervised replies tagged | tag rate | BLEU-2 | ROUGE-L | strategy acc. | n contexts | steps "
      "| wall: train / respond (s) |")
print("|---|---|---|---|---|---|---|---|---|")
for side, label in (("before", "messages, untagged history (312583e)"), ("after", "prompt-completion, tagged history")):
    rows = [json.loads(x) for x in (w / f"responses-{side}.jsonl").read_text().splitlines() if x.strip()]
    m = json.loads((w / f"metrics-{side}.json").read_text())
    tagged = sum(r.get("strategy") is not None for r in rows)
    t, s = tagged_share(side)
    acc = m.get("strategy_accuracy")
    print(f"| {label} | {t}/{s} | {tagged}/{len(rows)} = {100 * tagged / len(rows):.1f} % | {m['bleu']['2']:.2f} "
          f"| {m['rouge_l']:.2f} | {'-' if acc is None else f'{acc:.2f}'} | {len(rows)} | {steps} "
          f"| {times.get('train-' + side, '?')} / {times.get('respond-' + side, '?')} |")
print(f"corpus: {times.get('corpus', '?')} s")
EOF
}

[ $# -gt 0 ] || set -- corpus export train-before train-after respond-before respond-after report
for s in "$@"; do
  case $s in
    corpus) step_corpus ;;
    export) step_export ;;
    train-before) train before old ;;
    train-after) train after new ;;
    respond-before) respond before old ;;
    respond-after) respond after new ;;
    report) step_report ;;
    *) echo "unknown step '$s' (corpus export train-before train-after respond-before respond-after report)" >&2; exit 2 ;;
  esac
done
