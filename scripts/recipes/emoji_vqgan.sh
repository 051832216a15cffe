#!/usr/bin/env bash
# The emoji RGB VQGAN on a CPU, offline: the recipe of pretrained/emoji-vqgan.
#
#   1. an f8 autoencoder (64 px RGB -> 8x8 = 64 tokens, 512 codes, 1.12M parameters) trained with
#      scripts/train_vqgan.py on the emoji train split (both styles, all skin tones): AE_STEPS steps at
#      learning rate 1e-3, then FINETUNE_STEPS more from those weights at 5e-4 (a step-down schedule in two runs,
#      so the first run's model can be measured on its own; seed 1 draws other batches);
#   2. the reconstruction metrics of both on the held-out test split (scripts/evaluate.py --classifier none).
#
# Usage (from the repository root): bash scripts/recipes/emoji_vqgan.sh [OUTPUT_DIR]
# Measured: see docs/emoji_vqgan.md. Data: python -m taming_hf.data.emoji builds the dataset (npm);
# LPIPS for the evaluation needs torchvision's VGG16 weights (offline: python -m taming_hf.utils.offline_weights).
#
# Why these flags: f8 rather than f4 (64 tokens keep a prior over the codes trainable on a 2-core CPU; the
# measured comparison is in docs/emoji_vqgan.md); L1 + codebook loss only (--perceptual_weight 0 and no
# discriminator: on the shared 2-core machine a first timing run with LPIPS took ~65 s per step of 16 images,
# and the budget was ~45 minutes);
# dead codes re-seeded from encoder outputs every 25 steps, which keeps codebook usage high.
set -euo pipefail

OUT=${1:-emoji-vqgan-run}
AE_STEPS=${AE_STEPS:-300}
FINETUNE_STEPS=${FINETUNE_STEPS:-300}
read -r -a EVAL_EXTRA <<< "${EVAL_ARGS:-}"
# One thread: small convolutions scale badly over threads, and the machine is shared.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
mkdir -p "$OUT"
start=$(date +%s)

cat > "$OUT/vqgan_config.json" <<'JSON'
{"model_type": "vqgan", "resolution": 64, "in_channels": 3, "out_channels": 3, "base_channels": 32,
 "channel_multiplier": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [],
 "latent_channels": 64, "embed_dim": 32, "num_embeddings": 512}
JSON

COMMON=(
  --dataset_name emoji --resolution 64 --center_crop --num_channels 3
  --train_batch_size 8 --perceptual_weight 0 --disc_start 1000000000 --codebook_reseed_steps 25
  --validation_split test --validation_steps 100000 --checkpointing_steps 100000 --report_to none
)
python scripts/train_vqgan.py "${COMMON[@]}" --model_config_name_or_path "$OUT/vqgan_config.json" \
  --learning_rate 1e-3 --max_train_steps "$AE_STEPS" --seed 0 --output_dir "$OUT/vqgan" > "$OUT/vqgan.log" 2>&1
echo "autoencoder: $(( $(date +%s) - start )) s"
python scripts/train_vqgan.py "${COMMON[@]}" --pretrained_model_name_or_path "$OUT/vqgan" \
  --learning_rate 5e-4 --max_train_steps "$FINETUNE_STEPS" --seed 1 --output_dir "$OUT/emoji-vqgan" \
  > "$OUT/finetune.log" 2>&1
echo "autoencoder + fine-tuning: $(( $(date +%s) - start )) s"

python scripts/evaluate.py --vqgan "$OUT/vqgan" "$OUT/emoji-vqgan" --dataset_name emoji --split test \
  --classifier none --output_dir "$OUT/eval" "${EVAL_EXTRA[@]}"
echo "total: $(( $(date +%s) - start )) s"
