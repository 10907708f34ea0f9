#!/usr/bin/env bash
# How gan-run's and TensorFlow's cost grows with the batch size (32, 100, 256, 1024 at the
# paper's widths) and the networks' width (half and double, batch 100): steps/s and samples/s
# of configs/paper.toml's step, one framework after the other per cell, in one sitting. Needs
# bench/.venv with TensorFlow (bench/compare.sh makes it; `pip install tensorflow-cpu` will do).
# Prints a markdown table. Env: THREADS (2), SAMPLES (images timed per cell, 20000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-2}"
SAMPLES="${SAMPLES:-20000}"
PY=bench/.venv/bin/python
GAN_RUN="${GAN_RUN:-target/release/gan-run}"
[[ -n "${GAN_RUN_BUILT:-}" ]] || cargo build --release >&2

# The paper's linear layers: G 0/3/6 (256/512/1024), D 0/2/4 (1024/512/256).
widths() {
    local f="$1"
    for spec in "generator 0 256" "generator 3 512" "generator 6 1024" \
                "discriminator 0 1024" "discriminator 2 512" "discriminator 4 256"; do
        set -- $spec
        printf -- '--set model.%s.layers[%s].out=%s ' "$1" "$2" "$(python3 -c "print(int($3 * $f))")"
    done
}

echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1) (family $(sed -n 's/^cpu family\t*: //p' /proc/cpuinfo | head -n 1), model $(sed -n 's/^model\t*: //p' /proc/cpuinfo | head -n 1)); $THREADS threads; code $(git rev-parse --short HEAD)"
echo
echo "| batch | width | gan-run steps/s | TF steps/s | gan-run samples/s | TF samples/s | gan-run / TF |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for cell in "32 1" "100 1" "256 1" "1024 1" "100 0.5" "100 2"; do
    set -- $cell
    batch=$1 width=$2
    steps=$(( SAMPLES / batch )); (( steps < 20 )) && steps=20
    # shellcheck disable=SC2046
    g=$(RAYON_NUM_THREADS="$THREADS" "$GAN_RUN" bench configs/paper.toml --json --no-baseline \
        --steps "$steps" --warmup 5 --set "training.batch_size=$batch" $(widths "$width") \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["steps_per_sec"])')
    t=$("$PY" bench/tensorflow_gan.py --steps "$steps" --warmup 5 --threads "$THREADS" \
        --batch "$batch" --width "$width" 2>/dev/null | tail -n 1 \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["steps_per_sec"])')
    python3 -c "
g, t, b = $g, $t, $batch
print(f'| {b} | $width | {g:.2f} | {t:.2f} | {g*b:.0f} | {t*b:.0f} | {g/t:.2f} |')"
done
