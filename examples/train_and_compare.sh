#!/usr/bin/env bash
# The whole chain on the embedded model, as a user would run it: simulate a small corpus, export it
# as prompt-completion SFT data, LoRA-train SmolLM2-135M on it, then compare the base and the trained model
# (1) on ESConv contexts with response metrics and (2) against simulated seekers from held-out
# personas, scored by a judge. About 40 minutes on 2 cores. On a GPU with a real server, raise the
# sizes and point --backend/--contender at real models.
#
#   bash examples/train_and_compare.sh WORKDIR [ESCONV_TSV]
set -euo pipefail
W=${1:?usage: train_and_compare.sh WORKDIR [ESCONV_TSV]}
TSV=${2:-../shared/data/esconv/devWithStrategy_short.tsv}
N_DIALOGUES=${N_DIALOGUES:-24}
STEPS=${STEPS:-60}
N_EVAL=${N_EVAL:-6}
N_CONTEXTS=${N_CONTEXTS:-60}
mkdir -p "$W"

# 1. a corpus (resumable: re-running continues it)
if [ -f "$W/corpus/manifest.json" ]; then
  socialsim simulate --resume "$W/corpus" -q
else
  socialsim simulate --model smollm2-135m --n "$N_DIALOGUES" --max-turns 4 --out "$W/corpus" -q
fi

# 2. prompt-completion SFT data (TRL), the strategy as a prefix in history and target, split by dialogue
[ -f "$W/sft/train.jsonl" ] || socialsim export "$W/corpus" --format sft --out "$W/sft" --valid-fraction 0.15

# 3. LoRA SFT (resumes from its last checkpoint when re-run)
# On a GPU the same command trains a 7B model: BASE_MODEL=/models/Qwen2.5-7B-Instruct TRAIN_ARGS="--bf16 --batch-size 8"
socialsim train --data "$W/sft" --out "$W/lora" --max-steps "$STEPS" --save-steps 20 \
  --base-model "${BASE_MODEL:-embedded}" ${TRAIN_ARGS:-}

# 4a. response metrics on ESConv contexts
for who in "base=local:smollm2-135m:plain" "tuned=hf:$W/lora/merged:plain"; do
  name=${who%%=*}
  [ -f "$W/responses-$name.jsonl" ] || \
    socialsim chatbot-eval responses --contender "$who" --contexts "$TSV" --limit "$N_CONTEXTS" \
      --out "$W/responses-$name.jsonl"
done

# 4b. simulated seekers from held-out personas, judged, side by side
[ -f "$W/interactive.json" ] || socialsim chatbot-eval interactive \
  --contender base=local:smollm2-135m:plain \
  --contender base-pipeline=local:smollm2-135m:pipeline \
  --contender tuned=hf:"$W/lora/merged":plain \
  --seeker local:smollm2-135m --judge local:smollm2-135m \
  --n "$N_EVAL" --max-turns 4 --out "$W/interactive.json"
