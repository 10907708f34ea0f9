#!/usr/bin/env bash
# Side-by-side speed of configs/paper.toml: gan-run's own `bench` against the same model and
# training step in PyTorch (bench/pytorch_gan.py) and TensorFlow 1-style graph mode
# (bench/tensorflow_gan.py), same steps, warm-up and thread count. Prints a markdown table.
#
#   bench/compare.sh                      # STEPS=200 THREADS=2
#   STEPS=50 THREADS=1 NO_TF=1 bench/compare.sh
#   GAN_RUN=path/to/gan-run bench/compare.sh
#
# Env knobs: STEPS (200), THREADS (2), WARMUP (10), NO_TF=1 (skip TensorFlow), NO_TORCH=1
# (skip PyTorch, e.g. where its CPU wheel index is unreachable),
# GAN_RUN (the binary; default target/release/gan-run, which cargo builds first).
# The environment passes through: on a machine whose cores are shared with other work,
# OMP_WAIT_POLICY=PASSIVE stops PyTorch's OpenMP threads spinning at barriers (measured here
# with a build running beside it: 0.6 steps/s at 2 threads by default, 14.8 with PASSIVE).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STEPS="${STEPS:-200}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-10}"
NO_TF="${NO_TF:-0}"
NO_TORCH="${NO_TORCH:-0}"
VENV=bench/.venv
PY="$VENV/bin/python"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

say() { echo "+ $*" >&2; }

# --- Python environment -------------------------------------------------------------------
if [[ ! -x "$PY" ]]; then
    say python3 -m venv "$VENV"
    python3 -m venv "$VENV"
fi
if [[ "$NO_TORCH" != 1 ]] && ! "$PY" -c 'import torch' 2>/dev/null; then
    # The CPU-only wheel avoids the multi-GB nvidia-* packages that PyPI's Linux torch pulls.
    say "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
    if ! "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu; then
        echo "CPU wheel index unreachable; falling back to PyPI's torch (pulls CUDA packages)" >&2
        say "$PY" -m pip install torch
        "$PY" -m pip install torch
    fi
fi
HAVE_TF=0
if [[ "$NO_TF" != 1 ]]; then
    if "$PY" -c 'import tensorflow' 2>/dev/null; then
        HAVE_TF=1
    else
        say "$PY" -m pip install tensorflow
        if "$PY" -m pip install tensorflow && "$PY" -c 'import tensorflow' 2>/dev/null; then
            HAVE_TF=1
        else
            echo "warning: TensorFlow did not install; skipping it" >&2
        fi
    fi
fi

# --- gan-run binary -----------------------------------------------------------------------
if [[ -z "${GAN_RUN:-}" ]]; then
    GAN_RUN=target/release/gan-run
    # Always: a stale binary would time old code (a no-op when it is up to date).
    say cargo build --release
    cargo build --release
fi

# --- Machine ------------------------------------------------------------------------------
echo "## Machine"
echo
echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
echo "- cores: $(nproc) available; benchmarks use $THREADS thread(s)"
if grep -q avx512f /proc/cpuinfo 2>/dev/null; then
    echo "- AVX-512: yes ($(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//'))"
else
    echo "- AVX-512: no"
fi
echo "- rustc: $(rustc --version 2>/dev/null || echo 'not found')"
echo "- python: $("$PY" --version 2>&1)"
echo "- steps timed: $STEPS after $WARMUP warm-up steps; batch 100"
LOAD="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
echo "- load average before the runs: $LOAD (anything else busy on the cores skews the numbers;"
echo "  OpenMP-threaded PyTorch suffers most when its threads must share cores)"
echo

# --- Runs ---------------------------------------------------------------------------------
say RAYON_NUM_THREADS="$THREADS" "$GAN_RUN" bench configs/paper.toml --json --steps "$STEPS" --warmup "$WARMUP"
RAYON_NUM_THREADS="$THREADS" "$GAN_RUN" bench configs/paper.toml --json \
    --steps "$STEPS" --warmup "$WARMUP" > "$OUT/gan-run.json"
GAN_RUN_VERSION="$("$GAN_RUN" --version 2>/dev/null | awk '{print $NF}' || true)"

if [[ "$NO_TORCH" != 1 ]]; then
    say "$PY" bench/pytorch_gan.py --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS"
    "$PY" bench/pytorch_gan.py --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" \
        | tail -n 1 > "$OUT/pytorch.json"
fi

if [[ "$HAVE_TF" == 1 ]]; then
    say "$PY" bench/tensorflow_gan.py --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS"
    if ! "$PY" bench/tensorflow_gan.py --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" \
        > "$OUT/tensorflow.out"; then
        echo "warning: the TensorFlow run failed; leaving it out" >&2
    else
        tail -n 1 "$OUT/tensorflow.out" > "$OUT/tensorflow.json"
    fi
fi

# --- Table --------------------------------------------------------------------------------
echo "## Speed: configs/paper.toml (one step = one D step + one G step)"
echo
python3 - "$OUT" "${GAN_RUN_VERSION:-?}" <<'EOF'
import json, os, sys

out, gan_run_version = sys.argv[1], sys.argv[2]
EPOCH_STEPS = 550  # 55,000 training images / batch 100

with open(os.path.join(out, "gan-run.json")) as f:
    g = json.load(f)  # pretty-printed: the whole output is the JSON
rows = [("gan-run (dfdx)", gan_run_version, g["steps_per_sec"], g.get("peak_rss_mb"))]
for name in ("pytorch", "tensorflow"):
    path = os.path.join(out, name + ".json")
    if os.path.exists(path):
        with open(path) as f:
            r = json.load(f)
        rows.append((r["framework"], r["version"], r["steps_per_sec"], r.get("peak_rss_mb")))

ours = rows[0][2]
print("| framework | version | steps/s | s per 550-step epoch | peak RSS MB | gan-run / framework |")
print("|---|---|---:|---:|---:|---:|")
for name, version, sps, rss in rows:
    rss_s = f"{rss:.0f}" if rss is not None else "n/a"
    print(f"| {name} | {version} | {sps:.2f} | {EPOCH_STEPS / sps:.1f} | {rss_s} | {ours / sps:.2f} |")
print()
print(f"gan-run: {g['gflops']:.1f} GFLOP/s of matrix products achieved, against a measured "
      f"peak of {g['peak_gflops']:.1f} GFLOP/s (1024^3 f32 product); "
      f"{g['gflop_per_step']:.3f} GFLOP per step.")
print("A ratio above 1 means gan-run is faster than that framework.")
EOF
