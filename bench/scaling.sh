#!/usr/bin/env bash
# How gan-run's cost grows beside TensorFlow's and PyTorch's: steps/s and samples/s of the
# paper config's step at batch 32, 100, 256 and 1024 (paper widths), then at half and double
# width (batch 100), one bench/compare.sh cell after another in one sitting. Prints a markdown
# table. Env: as bench/compare.sh (ROUNDS, THREADS, NO_TF, NO_TORCH, GAN_RUN).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${GAN_RUN:-}" ]]; then
    cargo build --release >&2
    export GAN_RUN=target/release/gan-run
fi

echo "- CPU: $(FORMAT=cpu bench/compare.sh); ${THREADS:-2} threads; ${ROUNDS:-3} rounds per cell (medians); code $(git rev-parse --short HEAD)"
echo
echo "| batch | width | gan-run steps/s (samples/s) | TensorFlow | PyTorch | gan-run / TF | gan-run / PyTorch |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for cell in "32 1" "100 1" "256 1" "1024 1" "100 0.5" "100 2"; do
    read -r batch width <<<"$cell"
    FORMAT=row bench/compare.sh configs/paper.toml --batch "$batch" --width "$width"
done
