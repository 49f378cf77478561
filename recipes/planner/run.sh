#!/usr/bin/env bash
# A planner bundle: a semantic-only stage 1 (the planner) that writes the instrumental's semantic
# codes from the vocals, and a stage 1 with time-aligned self-attention that writes only the
# coarse codes for them. Not yet in key: docs/model.md, "A planner". Needs the default recipe's tokenizers, token folders and stage 2
# (recipes/default/run.sh). Each step is skipped when its release exists; an interrupted run
# resumes from its checkpoint when the recipe is run again. Wall times: $RUNS/planner_times.tsv.
#
#   recipes/planner/run.sh          (DATA=data RUNS=runs OUT=models/planner)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=recipes/planner
OUT="${OUT:-models/planner}"
RUNS="${RUNS:-runs}"
TIMES="$RUNS/planner_times.tsv"
source recipes/lib.sh

train() {  # train NAME CONFIG [--init RELEASE]: one stage-1 run
  local name=$1; shift
  train_run stage1 "$RUNS/planner/$name" "$@"
}

mkdir -p "$RUNS/planner"
# one core: the planner (5000 steps of 32 x 4 s; about 95 min here)
train planner "$HERE/planner.json" > "$RUNS/planner/planner.log" 2>&1 & p1=$!
# the other: stage 1, grown in three runs of 1200 steps (about 2 h here): the listening recipe,
# the same again from its weights, then with time-aligned self-attention
(
  train listening recipes/listening/stage1.json
  train listening-more recipes/listening/stage1.json --init "$RUNS/planner/listening/release"
  train timed "$HERE/stage1.json" --init "$RUNS/planner/listening-more/release"
) > "$RUNS/planner/stage1.log" 2>&1 & p2=$!
r1=0 r2=0
wait "$p1" || r1=$?
wait "$p2" || r2=$?
[ "$r1$r2" = 00 ] || { echo "recipe: a run failed: see $RUNS/planner/*.log" >&2; exit 1; }
$SS bundle --semantic "$SEM" --codec "$RUNS/codec/release" --planner "$RUNS/planner/planner/release" \
  --stage1 "$RUNS/planner/timed/release" --stage2 "$RUNS/stage2/release" --out "$OUT" --fp16 \
  --release "${RELEASE:-singsong planner (recipe run)}"
echo "recipe: model bundle in $OUT; wall times in $TIMES"
