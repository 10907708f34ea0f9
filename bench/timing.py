"""The timing loop and the JSON line that every framework's step script prints, in one place so
that PyTorch, TensorFlow and each model are timed and reported the same way
(`bench/compare.sh` reads the line)."""

import json
import math
import resource
import time


def time_steps(step, warmup, steps):
    """Runs `step()` `warmup` times, then `steps` times on the clock: (seconds, last result)."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    last = None
    for _ in range(steps):
        last = step()
    return time.perf_counter() - start, last


def report(framework, version, steps, seconds, threads, losses, **extra):
    """Prints the JSON line, after refusing non-finite `losses` (D's and G's last)."""
    # `.item()`: a PyTorch tensor or a NumPy scalar as a Python float.
    d, g = (float(v.item() if hasattr(v, "item") else v) for v in losses)
    if not (math.isfinite(d) and math.isfinite(g)):
        raise SystemExit(f"non-finite loss: d {d} g {g}")
    line = {"framework": framework, "version": version,
            "steps": steps, "steps_per_sec": steps / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": threads, **extra}
    print(json.dumps(line))
