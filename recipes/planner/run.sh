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
DATA="${DATA:-data}"
RUNS="${RUNS:-runs}"
OUT="${OUT:-models/planner}"
SS=.venv/bin/singsong
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
TIMES="$RUNS/planner_times.tsv"
SEM="$RUNS/semantic/default"
TRAIN=("$DATA/tok_songbook_train" "$DATA/tok_mir1k_train")
VALID=("$DATA/tok_songbook_valid" "$DATA/tok_mir1k_valid")
for need in "$SEM" "$RUNS/codec/release" "$RUNS/stage2/release" "${TRAIN[@]}" "${VALID[@]}"; do
  [ -e "$need" ] || { echo "recipe: $need missing: run recipes/default/run.sh first" >&2; exit 2; }
done

train() {  # train NAME CONFIG [--init RELEASE]: one stage-1 run, skipped when released
  local name=$1 config=$2; shift 2
  local out="$RUNS/planner/$name" resume=()
  if [ -e "$out/release/model.safetensors" ]; then echo "recipe: $name: done"; return; fi
  [ -f "$out/checkpoint.pt" ] && resume=(--resume)
  echo "recipe: $name"
  local start; start=$(date +%s)
  $SS train stage1 --config "$config" --semantic "$SEM" --tokens "${TRAIN[@]}" \
    --valid "${VALID[@]}" --out "$out" --no-progress "$@" "${resume[@]}"
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - start ))" >> "$TIMES"
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
