#!/usr/bin/env bash
# gan-run's training step beside the same model and step in TensorFlow 1-style graph mode
# (bench/tensorflow_gan.py, the tutorial's framework) and PyTorch (bench/pytorch_gan.py; the
# DCGAN's: bench/*_dcgan.py), in one
# sitting: ROUNDS rounds, each running every framework once in turn, and the medians. Prints a
# markdown table, or with FORMAT=row one table row for bench/scaling.sh (FORMAT=cpu: the CPU line).
#
#   bench/compare.sh                                  # configs/paper.toml, batch 100, width 1
#   bench/compare.sh configs/paper.toml --batch 1024 --width 2
#   ROUNDS=5 STEPS=300 NO_TORCH=1 bench/compare.sh
#   ROUNDS=3 STEPS=40 bench/compare.sh configs/dcgan.toml   # the DCGAN in all three
#
# --model paper (bench/*_gan.py): the paper's networks (G 100-256-512-1024-784 with
# batch-statistics batch-norm and dropout 0.5, D 784-1024-512-256-1, the tutorial's
# double-sigmoid loss, two Adams); --width scales their hidden widths and, through --set, the
# config's (whose linear layers must sit where the paper config's do). --model dcgan
# (bench/*_dcgan.py): configs/dcgan.toml's convolutional G and D, non-saturating loss, G's
# moving average, and R1 on D where the config's [gradient_penalty] asks for it; no --width.
# The model is dcgan for a config file named dcgan.toml, paper otherwise; another config times
# gan-run on that config beside that model elsewhere.
#
# Env: ROUNDS (3), STEPS (steps timed per run; default about 20,000 images' worth for the
# paper model and 5,000 for the DCGAN, five times the arithmetic per image; at least 20),
# WARMUP (10), THREADS (2), NO_TF=1, NO_TORCH=1 (skip one; e.g. where PyTorch's CPU wheel index
# is unreachable), GAN_RUN (the binary; default target/release/gan-run, or the one under
# CARGO_TARGET_DIR, which cargo builds first). bench/.venv is created with tensorflow-cpu and
# torch when missing (PyPI's Linux torch wheel pulls the CUDA packages, several GB, when the CPU
# index is unreachable). On a machine whose cores are shared, OMP_WAIT_POLICY=PASSIVE stops
# PyTorch's OpenMP threads spinning.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CONFIG=configs/paper.toml
BATCH=100
WIDTH=1
MODEL=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --batch) BATCH="$2"; shift 2 ;;
        --width) WIDTH="$2"; shift 2 ;;
        --model) MODEL="$2"; shift 2 ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option '$1' (try --help)" >&2; exit 2 ;;
        *) CONFIG="$1"; shift ;;
    esac
done
[[ -f "$CONFIG" ]] || { echo "error: no config file at '$CONFIG'" >&2; exit 2; }
[[ "$BATCH" =~ ^[1-9][0-9]*$ ]] || { echo "error: --batch takes a positive whole number, not '$BATCH'" >&2; exit 2; }
[[ "$WIDTH" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "error: --width takes a positive number, not '$WIDTH'" >&2; exit 2; }
if [[ -z "$MODEL" ]]; then
    MODEL=paper; [[ "$(basename "$CONFIG")" == dcgan.toml ]] && MODEL=dcgan
fi
case "$MODEL" in
    paper) SCRIPT=gan ;;
    dcgan) SCRIPT=dcgan
        # Its widths are not the paper's, so --width has no layers to scale.
        [[ "$(python3 -c "print(float('$WIDTH') == 1.0)")" == True ]] \
            || { echo "error: --width scales the paper model only" >&2; exit 2; } ;;
    *) echo "error: --model takes paper or dcgan, not '$MODEL'" >&2; exit 2 ;;
esac
# The config's gradient penalty, for the other frameworks' DCGAN step: R1 only.
PENALTY=()
if [[ "$MODEL" == dcgan ]]; then
    read -r KIND R1_WEIGHT R1_EVERY < <(python3 - "$CONFIG" <<'PYEOF'
import sys, tomllib
gp = tomllib.load(open(sys.argv[1], "rb")).get("gradient_penalty", {})
print(gp.get("kind", "none"), gp.get("weight", 0), gp.get("every", 1))
PYEOF
)
    case "$KIND" in
        none) ;;
        r1) PENALTY=(--r1-weight "$R1_WEIGHT" --r1-every "$R1_EVERY") ;;
        *) echo "error: $CONFIG's gradient_penalty.kind = \"$KIND\": the other frameworks' DCGAN step has R1 only" >&2; exit 2 ;;
    esac
fi

# What the VM reports of its CPU: the model name alone can hide different chips.
CPU="$(lscpu | sed -n 's/^Model name: *//p' | head -n 1) (family $(sed -n 's/^cpu family\t*: //p' /proc/cpuinfo | head -n 1), model $(sed -n 's/^model\t*: //p' /proc/cpuinfo | head -n 1)$(grep -q avx512f /proc/cpuinfo && echo ', AVX-512' || echo ', no AVX-512'))"
# FORMAT=cpu: that line alone (bench/scaling.sh's header).
[[ "${FORMAT:-}" == cpu ]] && { echo "$CPU"; exit 0; }

ROUNDS="${ROUNDS:-3}"
IMAGES=20000; [[ "$MODEL" == dcgan ]] && IMAGES=5000
DEFAULT_STEPS=$(( IMAGES / BATCH )); (( DEFAULT_STEPS < 20 )) && DEFAULT_STEPS=20
STEPS="${STEPS:-$DEFAULT_STEPS}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-10}"
NO_TF="${NO_TF:-0}"
NO_TORCH="${NO_TORCH:-0}"
FORMAT="${FORMAT:-table}"
VENV=bench/.venv
PY="$VENV/bin/python"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

say() { echo "+ $*" >&2; }

# --- Python environment -------------------------------------------------------------------
if [[ "$NO_TF" != 1 || "$NO_TORCH" != 1 ]] && [[ ! -x "$PY" ]]; then
    say python3 -m venv "$VENV"
    python3 -m venv "$VENV"
fi
if [[ "$NO_TORCH" != 1 ]] && ! "$PY" -c 'import torch' 2>/dev/null; then
    # The CPU-only wheel avoids the multi-GB nvidia-* packages that PyPI's Linux torch pulls.
    say "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
    if ! "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu; then
        echo "CPU wheel index unreachable; falling back to PyPI's torch (pulls CUDA packages)" >&2
        "$PY" -m pip install torch
    fi
fi
if [[ "$NO_TF" != 1 ]] && ! "$PY" -c 'import tensorflow' 2>/dev/null; then
    say "$PY" -m pip install tensorflow-cpu
    "$PY" -m pip install tensorflow-cpu
fi

# --- gan-run binary -----------------------------------------------------------------------
if [[ -z "${GAN_RUN:-}" ]]; then
    GAN_RUN="${CARGO_TARGET_DIR:-target}/release/gan-run"
    # Always: a stale binary would time old code (a no-op when it is up to date).
    say cargo build --release
    cargo build --release >&2
fi

# The paper's linear layers: G 0/3/6 (256/512/1024), D 0/2/4 (1024/512/256).
SETS=(--set "training.batch_size=$BATCH")
# Only when scaled, so that any config runs at width 1.
if [[ "$(python3 -c "print(float('$WIDTH') != 1.0)")" == True ]]; then
    for spec in "generator 0 256" "generator 3 512" "generator 6 1024" \
                "discriminator 0 1024" "discriminator 2 512" "discriminator 4 256"; do
        read -r net layer paper <<<"$spec"
        SETS+=(--set "model.$net.layers[$layer].out=$(python3 -c "print(int($paper * $WIDTH))")")
    done
fi

# --- Runs: every framework once per round, so that a slow spell of the VM hits all ------------
for round in $(seq "$ROUNDS"); do
    say "round $round/$ROUNDS: gan-run"
    RAYON_NUM_THREADS="$THREADS" "$GAN_RUN" bench "$CONFIG" --json --no-baseline \
        --steps "$STEPS" --warmup "$WARMUP" "${SETS[@]}" > "$OUT/gan-run.$round.json"
    for fw in tensorflow pytorch; do
        skip=NO_TF; [[ $fw == pytorch ]] && skip=NO_TORCH
        [[ "${!skip}" == 1 ]] && continue
        say "round $round/$ROUNDS: $fw"
        args=(--steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --batch "$BATCH")
        [[ "$MODEL" == paper ]] && args+=(--width "$WIDTH")
        args+=(${PENALTY[@]+"${PENALTY[@]}"})
        "$PY" "bench/${fw}_${SCRIPT}.py" "${args[@]}" \
            2>"$OUT/$fw.$round.err" | tail -n 1 > "$OUT/$fw.$round.json" \
            || { cat "$OUT/$fw.$round.err" >&2; echo "error: the $fw run failed" >&2; exit 1; }
    done
done

# --- Table --------------------------------------------------------------------------------
python3 - "$OUT" "$ROUNDS" "$FORMAT" "$CONFIG" "$MODEL" "$BATCH" "$WIDTH" "$STEPS" "$THREADS" \
    "$CPU" \
    "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench Cargo.toml Cargo.lock || echo '+changes')" \
    "$("$GAN_RUN" --version | awk '{print $NF}')" "${PENALTY[*]+R1 ${PENALTY[*]}}" <<'PYEOF'
import json, os, statistics, sys

(out, rounds, fmt, config, model, batch, width, steps, threads, cpu, code,
 gan_run_version, penalty) = sys.argv[1:]
penalty = f", {penalty}" if penalty else ""
rounds, batch = int(rounds), int(batch)

def runs(name):
    paths = [os.path.join(out, f"{name}.{r}.json") for r in range(1, rounds + 1)]
    return [json.load(open(p)) for p in paths if os.path.exists(p)]

frameworks = [(n, runs(n)) for n in ("gan-run", "tensorflow", "pytorch")]
frameworks = [(n, r) for n, r in frameworks if r]
median = {n: statistics.median(x["steps_per_sec"] for x in r) for n, r in frameworks}
ours = median["gan-run"]

if fmt == "row":
    # batch | width | steps/s and samples/s per framework | gan-run / TF | gan-run / PyTorch
    cells = [str(batch), width]
    for n in ("gan-run", "tensorflow", "pytorch"):
        cells.append(f"{median[n]:.2f} ({median[n] * batch:.0f})" if n in median else "n/a")
    for n in ("tensorflow", "pytorch"):
        cells.append(f"{ours / median[n]:.2f}" if n in median else "n/a")
    print("| " + " | ".join(cells) + " |")
    sys.exit()

print(f"- {config} (model {model} in the other frameworks{penalty}), batch {batch}, width x{width}; "
      f"{steps} steps timed per run, {rounds} rounds, {threads} threads")
print(f"- CPU: {cpu}; code {code}")
print()
print("| framework | version | steps/s (median) | each round | samples/s | peak RSS MB | gan-run / it |")
print("|---|---|---:|---|---:|---:|---:|")
for n, r in frameworks:
    version = r[0].get("version", gan_run_version)
    each = ", ".join(f"{x['steps_per_sec']:.2f}" for x in r)
    rss = max((x.get("peak_rss_mb") or 0) for x in r)
    print(f"| {n} | {version} | {median[n]:.2f} | {each} | {median[n] * batch:.0f} | {rss:.0f} | "
          f"{ours / median[n]:.2f} |")
g = runs("gan-run")
print()
print("gan-run's matrix products: " + ", ".join(
    f"{x['gflops']:.0f} of {x['peak_gflops']:.0f} GFLOP/s ({100 * x['gflops'] / x['peak_gflops']:.0f}%)"
    for x in g) + " (peak: a 1024^3 product, same run).")
PYEOF
