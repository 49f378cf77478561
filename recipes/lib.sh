# Shared by the recipes that build on recipes/default/run.sh's outputs (planner, renderer):
# source it after setting TIMES; it sets DATA, RUNS, SS, SEM, TRAIN and VALID, checks that the
# default recipe's parts exist, and defines train_run.
DATA="${DATA:-data}"
RUNS="${RUNS:-runs}"
SS=.venv/bin/singsong
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
SEM="$RUNS/semantic/default"
TRAIN=("$DATA/tok_songbook_train" "$DATA/tok_mir1k_train")
VALID=("$DATA/tok_songbook_valid" "$DATA/tok_mir1k_valid")
for need in "$SEM" "$RUNS/codec/release" "$RUNS/stage2/release" "${TRAIN[@]}" "${VALID[@]}"; do
  [ -e "$need" ] || { echo "recipe: $need missing: run recipes/default/run.sh first" >&2; exit 2; }
done

train_run() {  # train_run STAGE RUN_DIR CONFIG [ARGS]: one run, skipped when released, resumed
  local stage=$1 out=$2 config=$3; shift 3
  local name resume=()
  name=$(basename "$out")
  if [ -e "$out/release/model.safetensors" ]; then echo "recipe: $name: done"; return; fi
  [ -f "$out/checkpoint.pt" ] && resume=(--resume)
  echo "recipe: $name"
  local start; start=$(date +%s)
  $SS train "$stage" --config "$config" --semantic "$SEM" --tokens "${TRAIN[@]}" \
    --valid "${VALID[@]}" --out "$out" --no-progress "$@" "${resume[@]}"
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - start ))" >> "$TIMES"
}
