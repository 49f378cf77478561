#!/usr/bin/env bash
# The paper's ablation at small scale: stage 1 with vocal featurization S, A and SA, each trained
# with and without vocal noise on separated pairs (songbook + MIR-1K train singers), then every
# arm evaluated on held-out MIR-1K singers from isolated and from separated vocals.
#
#   recipes/ablation/run.sh            (after recipes/default/run.sh made the tokens and stage 2)
#   STEPS=450 CLIPS=24 JOBS=2 recipes/ablation/run.sh
#
# Writes runs/ablation/<arm>/ (training), runs/ablation/bundles/<arm>/, runs/ablation/eval-*/
# and docs-ready tables in runs/ablation/table.md (benchmarks/ablation_table.py). Arms train
# JOBS at a time, one torch thread each; every arm shares the recipe's codec, semantic
# tokenizer and stage 2, so only stage 1 differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=recipes/ablation
DATA="${DATA:-data}"
RUNS="${RUNS:-runs}"
OUT="$RUNS/ablation"
JOBS="${JOBS:-2}"
STEPS="${STEPS:-450}"
CLIPS="${CLIPS:-24}"
STAGE2="${STAGE2:-$RUNS/stage2/release}"
SS=.venv/bin/singsong
PY=.venv/bin/python
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
ARMS=(S-noise S-clean A-noise A-clean SA-noise SA-clean)

train_arm() {  # train_arm ARM: featurization and noise from the arm's name
  local arm=$1 feat=${1%-*} noise=false resume=()
  [ "${1#*-}" = noise ] && noise=true
  [ -f "$OUT/$arm/release/model.safetensors" ] && { echo "ablation: $arm: trained"; return; }
  "$PY" - "$HERE/stage1.json" "$OUT/$arm.json" "$feat" "$noise" "$STEPS" <<'PY'
import json, sys
base, out, feat, noise, steps = sys.argv[1:]
cfg = json.load(open(base))
cfg["model"] |= {"featurization": feat, "vocal_noise": noise == "true"}
cfg["train"]["steps"] = int(steps)
json.dump(cfg, open(out, "w"), indent=1)
PY
  [ -f "$OUT/$arm/checkpoint.pt" ] && resume=(--resume)
  local start; start=$(date +%s)
  $SS train stage1 --config "$OUT/$arm.json" \
    --tokens "$DATA/tok_songbook_train" "$DATA/tok_mir1k_train" \
    --valid "$DATA/tok_songbook_valid" "$DATA/tok_mir1k_valid" \
    --out "$OUT/$arm" --no-progress "${resume[@]}" > "$OUT/$arm.log" 2>&1
  printf '%s\t%s\n' "$arm" "$(( $(date +%s) - start ))" >> "$OUT/times.tsv"
  $SS bundle --semantic "$RUNS/semantic/default" --codec "$RUNS/codec/release" \
    --stage1 "$OUT/$arm/release" --stage2 "$STAGE2" --out "$OUT/bundles/$arm" --fp16 \
    --release "ablation $arm" > /dev/null
}
export -f train_arm
export HERE DATA RUNS OUT STEPS STAGE2 SS PY
printf '%s\n' "${ARMS[@]}" | xargs -P "$JOBS" -I{} bash -c 'train_arm {}'

# evaluation: JOBS runs side by side, each over a share of the arms (the first one also runs
# the retrieval baseline); the same held-out clips and seeds in every run
models=()
for arm in "${ARMS[@]}"; do models+=("$OUT/bundles/$arm"); done
per=$(( (${#models[@]} + JOBS - 1) / JOBS ))
pids=()
for ((j = 0; j < JOBS; j++)); do
  share=("${models[@]:$((j * per)):$per}")
  [ ${#share[@]} -gt 0 ] || continue
  extra=(); [ "$j" -gt 0 ] && extra=(--no-baseline)
  args=(); for m in "${share[@]}"; do args+=(--model "$m"); done
  [ -f "$OUT/eval-$j/metrics.json" ] && continue
  $SS eval run "$DATA/pairs_mir1k/manifest.jsonl" --out "$OUT/eval-$j" --max-clips "$CLIPS" \
    "${args[@]}" "${extra[@]}" > "$OUT/eval-$j.log" 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
"$PY" benchmarks/ablation_table.py "$OUT"/eval-*/metrics.json --times "$OUT/times.tsv" \
  > "$OUT/table.md"
cat "$OUT/table.md"
