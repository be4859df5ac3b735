"""Update latency of the book's explorers, as a slider drag meets it: each chapter's explorer is built the
way its chapter builds it (full-size arguments, not CQ_QUICK), then every control is dragged across its
range, one value after another, and each change is timed from setting the value to the figure being
redrawn (the explorer's observer runs synchronously: the library update plus the plotly trace updates).

The first drag visits every value once (a setting that changes the dynamics simulates then); the second
drag revisits them (cached explorers only slice). A walk then moves one control at a time, chosen at
random (seeded), while the others sit away from their starting values: the orders a person takes that the
drags miss (a new L, then T past what was simulated). The worst update counts, first drag or walk. `python benchmarks/widgets.py --compare DIR` times the
checkout at DIR (e.g. an older main) in the same run, explorer by explorer, each in a fresh process.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPLORERS = ("clamp", "quantization", "neuron", "training", "conversion", "raster", "timesteps", "bits",
             "timesteps-cifar10", "energy", "signed")
CHAPTER = {"clamp": 1, "quantization": 2, "neuron": 3, "training": 4, "conversion": 5, "raster": 6,
           "timesteps": 7, "bits": 8, "timesteps-cifar10": 9, "energy": 10, "signed": 11}
POINTS = 8  # values per drag of an IntSlider or FloatSlider
WALK = 32  # single-control moves of the walk


def build(name):
    """The chapter's explorer, as its chapter calls it (full mode)."""
    import cqlearn as cq
    from cqlearn.quant import to_clamp

    test = cq.data.load("digits", "test")
    cq16, plain = cq.load(cq.shipped("digits_cnn_cq16.pt")), cq.load(cq.shipped("digits_cnn_plain.pt"))
    if name == "clamp":
        from cqlearn.widgets import clamp
        return clamp.clamp_explorer(plain, test, ceiling=1.0, images=360, progress=False)
    if name == "quantization":
        from cqlearn.widgets import quantization
        levels = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # the chapter's sweep; the numbers do not change the cost
        sweeps = {m: dict.fromkeys(levels, 0.9) for m in ("floor", "round")}
        return quantization.quantization_explorer(cq16, test, levels=16, accuracies=sweeps, images=360)
    if name == "neuron":
        from cqlearn.widgets import neuron
        return neuron.neuron_explorer(current=0.3, timesteps=16, threshold=1.0, reset="subtract")
    if name == "training":
        from cqlearn.widgets import training
        stages = {"plain": (plain, None), "clamp": (to_clamp(plain), None), "cq": (cq16, None)}
        return training.stage_explorer(stages, test.images[:360], stage="plain", layer=0)
    if name == "conversion":
        from cqlearn.widgets import conversion
        return conversion.conversion_explorer(cq16, test.images[:64], timesteps=16, layer=0, encoding="current")
    if name == "raster":
        from cqlearn.widgets import raster
        return raster.raster_explorer(cq16, test, image=0, layer=0, timesteps=32, encoding="spikes")
    if name == "timesteps":
        from cqlearn.widgets import timesteps
        return timesteps.timesteps_explorer(cq16, test, timesteps=16, levels=16, encoding="current", images=128)
    if name == "bits":
        from cqlearn.widgets import bits
        snn = cq.convert(cq16, 16, "spikes")
        return bits.bits_explorer(snn, test, bits=8, layer=bits.weighted_layers(snn)[1], images=128)
    if name == "energy":
        from cqlearn.widgets import energy
        return energy.energy_explorer(cq16, test, timesteps=16, encoding="spikes", images=64)
    if name == "timesteps-cifar10":  # chapter 9: the shipped CIFAR-10 network on 16 test images, on a CPU
        from cqlearn.widgets import timesteps
        model, cifar = cq.load(cq.shipped("cifar10_vgg_small_cq16.pt")), cq.data.load("cifar10", "test", limit=1000)
        levels = model.meta.get("levels", 16)
        return timesteps.timesteps_explorer(model, cifar, timesteps=levels, levels=levels, encoding="spikes", images=16)
    if name == "signed":
        from cqlearn.widgets import signed
        return signed.signed_explorer(early=0.9, late=-0.6, share=0.5, timesteps=16)
    raise ValueError(name)


def drag_values(control):
    """The values a drag across `control` visits, ending back at its starting value."""
    start = control.value
    if hasattr(control, "_options_values"):  # SelectionSlider, ToggleButtons, Dropdown
        values = list(control._options_values)
    else:
        low, high = control.min, control.max
        values = [low + (high - low) * k / (POINTS - 1) for k in range(POINTS)]
        if isinstance(start, int):
            values = sorted({int(round(v)) for v in values})
        else:
            step = control.step or 0.01
            values = [round(round(v / step) * step, 10) for v in values]
    return [v for v in values if v != start] + [start]


def timed(control, value):
    """Seconds from setting `control` to `value` to the figure being redrawn."""
    began = time.perf_counter()
    control.value = value
    return time.perf_counter() - began


def measure(name):
    """{build, controls: {control: {first: [s], second: [s], walk: [s]}}} for one explorer."""
    import torch

    torch.set_num_threads(1)
    began = time.perf_counter()
    box = build(name)
    result = {"build": time.perf_counter() - began, "controls": {}}
    for control_name, control in box.controls.items():
        values, passes = drag_values(control), {}
        for which in ("first", "second"):
            passes[which] = [timed(control, value) for value in values]
        result["controls"][control_name] = {**passes, "walk": []}
    choices = {control_name: drag_values(control) for control_name, control in box.controls.items()}
    rng = random.Random(0)
    for _ in range(WALK):
        control_name = rng.choice(sorted(choices))
        control = box.controls[control_name]
        value = rng.choice([v for v in choices[control_name] if v != control.value] or [control.value])
        result["controls"][control_name]["walk"].append(timed(control, value))
    return result


def child(name, code):
    """measure(name) in a fresh process importing cqlearn from `code`."""
    env = {**os.environ, "PYTHONPATH": code, "OMP_NUM_THREADS": "1", "CQ_STATIC": "0"}
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name], env=env, cwd=code,
                         capture_output=True, text=True, timeout=1800)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def worst(passes):
    """The slowest update of one control's first drag and walk moves, in seconds."""
    return max(passes["first"] + passes["walk"])


def summary(result):
    """(worst update of the first drags and the walk, worst of the second drags, median of all updates), in
    seconds."""
    if "error" in result:
        return None
    first = [t for c in result["controls"].values() for t in c["first"] + c["walk"]]
    second = [t for c in result["controls"].values() for t in c["second"]]
    return max(first), max(second), statistics.median(first + second)


def compare(names, old=None):
    """[{explorer, chapter, ours, old}] with measure()'s results, old and ours interleaved per explorer."""
    rows = []
    for name in names:
        print(f"[widgets] {name} ...", file=sys.stderr, flush=True)
        rows.append({"explorer": name, "chapter": CHAPTER[name], "old": child(name, old) if old else None,
                     "ours": child(name, ROOT)})
    return rows


def table(rows):
    ms = lambda s: f"{1000 * s:.0f} ms" if s >= 0.01 else f"{1000 * s:.1f} ms"
    lines = ["| ch. | explorer | build | worst update, first drag or walk | worst update, second drag | median | "
             "old code: worst, first drag or walk | per control (worst, first drag or walk) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ours, old = r["ours"], r["old"]
        s = summary(ours)
        if s is None:
            lines.append(f"| {r['chapter']} | {r['explorer']} | - | - | - | - | - | failed: {ours['error']} |")
            continue
        o = summary(old) if old else None
        per = ", ".join(f"{k} {ms(worst(v))}" for k, v in ours["controls"].items())
        lines.append(f"| {r['chapter']} | {r['explorer']} | {ours['build']:.2f} s | {ms(s[0])} | {ms(s[1])} | "
                     f"{ms(s[2])} | {ms(o[0]) if o else '-'} | {per} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=EXPLORERS, default=list(EXPLORERS))
    parser.add_argument("--compare", metavar="DIR", help="a checkout of older code to time in the same run")
    parser.add_argument("--child", choices=EXPLORERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    rows = compare(args.only, args.compare)
    print(table(rows))


if __name__ == "__main__":
    main()
