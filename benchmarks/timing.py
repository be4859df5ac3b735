"""Measuring helpers: the machine, paired timings, peak memory of a child process.

Timings are paired: each repeat times ours and every baseline back to back (alternating the order),
so a baseline always runs under the same conditions as ours. A shared machine only ever adds time
(other processes, OpenMP threads waiting for a core), so the reported time is the fastest repeat and
a ratio is fastest / fastest; the median ratio of the pairs is kept as a check.
"""
import datetime
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

import torch

from cqlearn.results import cpu_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine():
    """One line about where the numbers come from."""
    cpu = cpu_name()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory = f", {memory:.0f} GiB RAM"
    except (ValueError, OSError):
        memory = ""
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f} at start"
    return (f"{cpu}, {os.cpu_count()} cores{memory}, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, Python {platform.python_version()}, {platform.system()} {platform.release()}{load}")


def today():
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M")


def clock(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def paired(ours, baselines, repeats=5, warmup=1, seconds=2.0, most=25):
    """Time `ours` against each callable in `baselines` (a dict name -> callable), interleaved.

    At least `repeats` rounds, more (up to `most`) while ours has run for under `seconds` in all.
    Returns {"ours": fastest s, name: fastest s, ..., "ratio:" + name: fastest ours / fastest name,
    "median ratio:" + name: median of the per-round ratios, "repeats": rounds}."""
    for _ in range(warmup):
        ours()
        for f in baselines.values():
            f()
    times = {"ours": [], **{name: [] for name in baselines}}
    r = 0
    while r < repeats or (sum(times["ours"]) < seconds and r < most):
        order = [("ours", ours), *baselines.items()]
        if r % 2:
            order.reverse()
        for name, f in order:
            times[name].append(clock(f))
        r += 1
    result = {name: min(ts) for name, ts in times.items()}
    for name in baselines:
        result["ratio:" + name] = result["ours"] / result[name]
        result["median ratio:" + name] = statistics.median(o / b for o, b in zip(times["ours"], times[name]))
    result["repeats"] = r
    return result


def best_of(times_by_name):
    """{name: seconds} -> (name, seconds) of the fastest."""
    return min(times_by_name.items(), key=lambda item: item[1])


# --- peak memory ----------------------------------------------------------------------------------

def _status(key):
    match = re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read())
    return int(match.group(1)) * 1024 if match else None


def reset_peak():
    """Start a fresh peak-RSS measurement in this process; returns the resident bytes now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return _status("VmRSS")
    except OSError:
        return None


def peak_since(start):
    """Bytes by which the resident set rose above `start` (from reset_peak) at its highest."""
    if start is not None:
        return _status("VmHWM") - start
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # whole-process peak, an upper bound


def in_child(module, function, *args, timeout=1800):
    """Run benchmarks/<module>.py's `function(*args)` in a fresh Python and return its JSON answer,
    so that a peak-memory measurement starts from a clean process."""
    code = (f"import json, sys; sys.path.insert(0, {os.path.join(ROOT, 'benchmarks')!r}); "
            f"import {module}; print('@@' + json.dumps({module}.{function}(*json.loads(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    answer = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode or not answer:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{module}.{function} failed: {tail[0][:200]}")
    return json.loads(answer[-1][2:])


def ms(seconds):
    return f"{1e3 * seconds:.0f} ms" if seconds >= 0.1 else f"{1e3 * seconds:.1f} ms"


def mb(nbytes):
    return f"{nbytes / 2**20:.0f} MiB" if nbytes < 2**30 else f"{nbytes / 2**30:.2f} GiB"
