#!/usr/bin/env bash
# An experiment, not part of the default model: the codec's decoder fine-tuned with a
# multi-resolution STFT discriminator for 7.5 minutes on one GPU (run "a" of docs/tokenizers.md,
# "Fine-tuning the decoder"), on 34.8 minutes of instrumentals that pack_instrumentals.py writes
# (MIR-1K train singers' accompaniments, songbook train songs' instrumentals). The encoder and
# the quantizer stay frozen, so the codes and every stage model keep their meaning: pass
# --codec "$RUNS/decoder/release" to `singsong bundle` to try it. It lowers the codec's FAD
# floor (52.9 -> 39.6) but not the model's FAD, so no release uses it. Measured runs started
# from the shipped fp16 codec (the same weights, rounded). Needs recipes/default/run.sh's codec.
# About 5000 steps in 7.5 min on an H200 shared by two such runs; a 2-core CPU takes ~0.5 s a
# step at batch 8, so use a GPU.
#
#   recipes/decoder/run.sh          (DATA=data RUNS=runs MIR1K=../shared/data/mir1k DEVICE=cuda)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${DATA:-data}"
RUNS="${RUNS:-runs}"
MIR1K="${MIR1K:-../shared/data/mir1k}"
[ -e "$RUNS/codec/release" ] || { echo "recipe: run recipes/default/run.sh first" >&2; exit 2; }
if [ ! -e "$DATA/instrumentals" ]; then
  .venv/bin/python recipes/decoder/pack_instrumentals.py --mir1k "$MIR1K" \
    --songbook "$DATA/songbook" --out "$DATA/instrumentals.tmp"
  mv "$DATA/instrumentals.tmp" "$DATA/instrumentals"
fi
.venv/bin/singsong codec finetune --codec "$RUNS/codec/release" --audio "$DATA/instrumentals" \
  --out "$RUNS/decoder/release" --minutes 7.5 --device "${DEVICE:-cuda}" --fp16 --threads 4 \
  --set batch_size=32 --set disc_channels=32 --set decoder_lr=1e-4 --set disc_lr=2e-4 \
  --set save_minutes=4 --keep-exports
echo "recipe: decoder in $RUNS/decoder/release"
