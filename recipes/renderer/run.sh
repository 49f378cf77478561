#!/usr/bin/env bash
# A planner + renderer bundle: the planner (a semantic-only stage 1) writes the instrumental's
# semantic codes from the vocals, the renderer writes the coarse codes for them by parallel
# unmasking (docs/model.md, "A renderer"), stage 2 the fine codes; sampled at temperature 0.7,
# top-k 50, vocal guidance 3 (planner) and plan guidance 2 (renderer), as docs/model.md,
# "Guidance", chose; its tone match is fitted on 64 MIR-1K training clips, with the per-clip
# adaptation at 0.5 (docs/model.md, "Tone match"). This is the default model:
# recipes/default/run.sh ends by running it.
# Needs the default recipe's tokenizers, token folders and stage 2. Each step is skipped when its
# release exists; an interrupted run resumes from its checkpoint when the recipe is run again.
# Wall times: $RUNS/renderer_times.tsv.
#
#   recipes/renderer/run.sh          (DATA=data RUNS=runs OUT=models/renderer)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-models/renderer}"
RUNS="${RUNS:-runs}"
TIMES="$RUNS/renderer_times.tsv"
source recipes/lib.sh

train() {  # train STAGE NAME CONFIG [ARGS]
  local stage=$1 name=$2; shift 2
  train_run "$stage" "$RUNS/renderer/$name" "$@"
}

mkdir -p "$RUNS/renderer"
# one core each: the planner and the renderer do not depend on each other
train stage1 planner recipes/planner/planner.json > "$RUNS/renderer/planner.log" 2>&1 & p1=$!
# the renderer: 1100 steps of a 3000-step schedule, then 1900 more with plan dropout (what the
# released one went through: plan guidance was added after its first 1100 steps)
(
  train renderer renderer recipes/renderer/renderer.json --stop-at 1100
  train renderer renderer-guided recipes/renderer/renderer-guided.json \
    --init "$RUNS/renderer/renderer/release"
) > "$RUNS/renderer/renderer.log" 2>&1 & p2=$!
r1=0 r2=0
wait "$p1" || r1=$?
wait "$p2" || r2=$?
[ "$r1$r2" = 00 ] || { echo "recipe: a run failed: see $RUNS/renderer/*.log" >&2; exit 1; }
$SS bundle --semantic "$SEM" --codec "$RUNS/codec/release" --planner "$RUNS/renderer/planner/release" \
  --stage1 "$RUNS/renderer/renderer-guided/release" --stage2 "$RUNS/stage2/release" --out "$OUT" \
  --fp16 --temperature 0.7 --top-k 50 --guidance "${GUIDANCE:-3}" \
  --plan-guidance "${PLAN_GUIDANCE:-2}" --release "${RELEASE:-singsong renderer (recipe run)}" \
  --tone-match "$DATA/pairs_mir1k/manifest.jsonl" --tone-clips 64 --tone-adapt "${TONE_ADAPT:-0.5}"
echo "recipe: model bundle in $OUT; wall times in $TIMES"
