#!/usr/bin/env bash
# The tuning demo end to end, exactly as measured in docs/performance.md:
# score the base, tune, score the tuned version, quantize it twice, score and compare levels.
# Usage: MODELYARD_HOME=/tmp/demo examples/tune-demo/run_demo.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
my="${MODELYARD:-modelyard}"
"$my" models import --default
"$my" tune score gemma3-270m --data "$here/eval.jsonl" --json
"$my" tune lora --base gemma3-270m --data "$here/train.jsonl" --eval "$here/eval.jsonl" \
  --name ticket-router --epochs 1 --batch-size 8 --rank 8 --alpha 16 --lr 1e-3 \
  --max-seq-len 64 --checkpoint-every 10 --max-steps 24 --layers 8 --threads 2
"$my" tune score ticket-router --data "$here/eval.jsonl" --json
"$my" quantize ticket-router --type Q8_0
"$my" quantize ticket-router@1 --type Q4_K_M
"$my" tune score ticket-router-q8_0 --data "$here/eval.jsonl" --json
"$my" tune score ticket-router-q4_k_m --data "$here/eval.jsonl" --json
"$my" quantize report ticket-router --chart "${CHART:-levels.svg}"
