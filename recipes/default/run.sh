#!/usr/bin/env bash
# Train every part of the default model from nothing but Debian packages, PyPI and the MIR-1K
# folder, then assemble the bundle. Each step is resumable or skipped when its output exists, so
# re-running after an interruption continues where it stopped. Wall time is logged per step in
# $RUNS/recipe_times.tsv.
#
#   recipes/default/run.sh [MIR1K_DIR]      (default ../shared/data/mir1k)
#   JOBS=2 DATA=data RUNS=runs OUT=models/default recipes/default/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=recipes/default
MIR1K="${1:-../shared/data/mir1k}"
DATA="${DATA:-data}"
RUNS="${RUNS:-runs}"
OUT="${OUT:-models/default}"
JOBS="${JOBS:-2}"
HOURS="${HOURS:-20}"
SS=.venv/bin/singsong
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # one torch thread per process: see ENVIRONMENT

[ -x "$SS" ] || scripts/setup.sh
[ -d "$MIR1K" ] || { echo "recipe: MIR-1K folder not found: $MIR1K" >&2; exit 2; }
mkdir -p "$RUNS"
TIMES="$RUNS/recipe_times.tsv"

step() {  # step NAME DONE_MARKER COMMAND...: run unless DONE_MARKER exists, log the wall time
  local name=$1 marker=$2; shift 2
  if [ -e "$marker" ]; then echo "recipe: $name: done ($marker)"; return; fi
  echo "recipe: $name: $*"
  local start; start=$(date +%s)
  "$@"
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - start ))" >> "$TIMES"
}

# 1. the songbook (resumes song by song)
step songbook "$DATA/songbook/.complete-$HOURS" \
  bash -c "$SS songbook --hours $HOURS --seed 0 --out $DATA/songbook --jobs $JOBS --quiet \
           && touch $DATA/songbook/.complete-$HOURS"
# 2. the separator, trained on songbook stems and MIR-1K train singers
step separator "$RUNS/separator/release/model.safetensors" \
  $SS separate train --out "$RUNS/separator" --songbook "$DATA/songbook" --mir1k "$MIR1K" --steps 3000
# 3. separated training pairs (10 s clips with enough singing)
for src in songbook mir1k; do
  dir="$DATA/songbook"; [ "$src" = mir1k ] && dir="$MIR1K"
  step "pairs_$src" "$DATA/pairs_$src/.complete" \
    bash -c "$SS data pairs $dir --out $DATA/pairs_$src --separator builtin \
             --separator-path $RUNS/separator/release --jobs $JOBS && touch $DATA/pairs_$src/.complete"
done
# 4. the acoustic codec and 5. the semantic k-means
step codec "$RUNS/codec/release/model.safetensors" \
  $SS codec train --out "$RUNS/codec" --songbook "$DATA/songbook" --mir1k "$MIR1K" --minutes 60 --threads 1
step semantic "$RUNS/semantic/default/model.safetensors" \
  $SS semantic fit --out "$RUNS/semantic/default" --songbook "$DATA/songbook" --mir1k "$MIR1K" --threads 1
# 6. token folders per corpus and split (noisy vocal copies included)
for src in songbook mir1k; do
  for split in train valid; do
    step "tokens_${src}_$split" "$DATA/tok_${src}_$split/.complete" \
      bash -c "$SS tokenize $DATA/pairs_$src/manifest.jsonl --semantic $RUNS/semantic/default \
               --acoustic $RUNS/codec/release --split $split --out $DATA/tok_${src}_$split --quiet \
               && touch $DATA/tok_${src}_$split/.complete"
  done
done
TRAIN=("$DATA/tok_songbook_train" "$DATA/tok_mir1k_train")
VALID=("$DATA/tok_songbook_valid" "$DATA/tok_mir1k_valid")
# 7. the two stages, side by side (one core each; about an hour on this 2-core machine: stage 1
# 25 min, stage 2 63 min).
# An interrupted stage resumes from its checkpoint when the recipe is run again.
train_stage() {
  local stage=$1 resume=()
  [ -f "$RUNS/$stage/checkpoint.pt" ] && resume=(--resume)
  step "$stage" "$RUNS/$stage/release/model.safetensors" \
    $SS train "$stage" --config "$HERE/$stage.json" --tokens "${TRAIN[@]}" --valid "${VALID[@]}" \
      --out "$RUNS/$stage" --no-progress "${resume[@]}"
}
train_stage stage1 > "$RUNS/stage1.log" 2>&1 & p1=$!
train_stage stage2 > "$RUNS/stage2.log" 2>&1 & p2=$!
r1=0 r2=0
wait "$p1" || r1=$?
wait "$p2" || r2=$?
[ "$r1$r2" = 00 ] || { echo "recipe: a stage failed: see $RUNS/stage{1,2}.log" >&2; exit 1; }
# 8. the planner and the renderer (recipes/renderer/run.sh, side by side: about 95 min), and the
# bundle (fp16 weights): planner + renderer + stage 2, the default model. Stage 1 of step 7 is
# singsong-default 0.1's coarse stage, kept for comparison (docs/model.md). To release the
# bundle: copy it over src/singsong/assets/default/ (keep and update MODEL_CARD.md) and commit.
step renderer "$OUT/singsong.json" \
  env DATA="$DATA" RUNS="$RUNS" OUT="$OUT" RELEASE="${RELEASE:-singsong-default (recipe run)}" \
  recipes/renderer/run.sh
echo "recipe: model bundle in $OUT; wall times in $TIMES (and $RUNS/renderer_times.tsv)"
