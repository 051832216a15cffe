#!/usr/bin/env bash
# Text-to-emoji on a CPU, offline: the recipe of pretrained/taming-emoji-text.
#
# A small text-conditional GPT-2 prior (4 layers, width 128, 24 caption tokens + 8x8 image codes)
# over the codes of pretrained/emoji-vqgan, trained on the emoji train split (6,810 images) with
# OpenAI CLIP's BPE tokenizer, one caption per image per step drawn among its CLDR name and its
# keywords, and 10% caption dropout (the null caption classifier-free guidance starts from).
# Validation loss is measured on the test split, whose emoji the prior never sees.
#
# Usage (from the repository root): bash scripts/recipes/emoji_text.sh [OUTPUT_DIR]
#   PRIOR_STEPS   optimizer steps of batch 32 (default 1200: 19 min on this 2-core CPU, two threads, nothing
#                 else running; 44 min on one thread of a shared one)
#   VQGAN         the emoji VQGAN (default pretrained/emoji-vqgan)
#   PRIOR_ARGS    extra train_transformer.py flags, e.g. a longer run that extends this one:
#                 PRIOR_STEPS=6000 PRIOR_ARGS="--resume_from_checkpoint latest" bash scripts/recipes/emoji_text.sh
#                 (the cosine schedule then follows the new step count from the resumed step on).
# Offline: the tokenizer comes from python -m taming_hf.utils.offline_weights clip-bpe, the emoji
# dataset from its cache (python -m taming_hf.data.emoji). Measured: see docs/text_to_image.md.
set -euo pipefail

OUT=${1:-emoji-text-run}
VQGAN=${VQGAN:-pretrained/emoji-vqgan}
PRIOR_STEPS=${PRIOR_STEPS:-1200}
read -r -a PRIOR_EXTRA <<< "${PRIOR_ARGS:-}"
# Small matrices scale badly over threads, and the machine is shared.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=${MKL_NUM_THREADS:-2}
export PYTHONPATH=${PYTHONPATH:-$PWD/src}
mkdir -p "$OUT"
start=$(date +%s)

python -m taming_hf.utils.offline_weights clip-bpe
TOKENIZER=$(python -c "from taming_hf.text import clip_tokenizer_dir; print(clip_tokenizer_dir())")

nice -n 5 python scripts/train_transformer.py \
  --vqgan_model_name_or_path "$VQGAN" --dataset_name emoji \
  --conditioning text --caption_column text --extra_caption_columns keywords \
  --tokenizer_name_or_path "$TOKENIZER" --max_text_length 24 \
  --caption_dropout_prob 0.1 --sample_guidance_scale 3.0 \
  --n_layer 4 --n_head 4 --n_embd 128 --dropout 0.0 \
  --train_batch_size 32 --learning_rate 1e-3 --lr_warmup_steps 30 --max_train_steps "$PRIOR_STEPS" \
  --max_eval_samples 762 --validation_steps 1000 --num_validation_images 8 \
  --checkpointing_steps 100 --checkpoints_total_limit 2 --logging_steps 25 \
  --encode_batch_size 256 --seed 0 --output_dir "$OUT/taming-emoji-text" "${PRIOR_EXTRA[@]}" \
  2>&1 | tee -a "$OUT/prior.log"
echo "prior: $(( $(date +%s) - start )) s"
