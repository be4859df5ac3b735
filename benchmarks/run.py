"""`make bench`: run the benchmarks and rewrite BENCHMARKS.md with the machine, the date and a table.

    python benchmarks/run.py                 # everything (about 10-20 minutes on 2 cores)
    python benchmarks/run.py --quick         # smaller cases, a couple of minutes
    python benchmarks/run.py --only widgets book --out -     # some groups, table to stdout only

Groups: simulation (SNN inference against the dense limit, a per-step loop and SpikingJelly), memory
(a full raster through VGG-* at T = 256; a large batch under max_memory), book (every chapter with
CQ_QUICK=1), widgets (explorer update latency). Every baseline is measured in the same run as ours.
"""
import argparse
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import timing  # noqa: E402

GROUPS = ("simulation", "memory", "book", "widgets")
BOOK_PEAK_GOAL = 1.5 * 2**30
WIDGET_GOAL = 0.1


def simulation_rows(args):
    import simulation

    rows = []
    nets = [("digits_cnn", 16), ("vgg_small", 16)]
    for name, batch in nets:
        for T in ((32,) if args.quick else (32, 64)):
            rows += simulation.compare(name, T, batch, "spikes", repeats=args.repeats)
    for name, batch in nets:  # the signed neuron (chapter 11) costs at most a little more than IF
        rows += simulation.compare_neurons(name, 32, batch, "spikes", repeats=args.repeats)
    if not args.quick:  # the "current" encoding computes its first synapse once, not T times
        rows += simulation.compare("vgg_small", 64, 16, "current", repeats=args.repeats, spikingjelly=False)[:1]
    return rows


def memory_rows(args):
    rows = []
    for membranes in (False, True):
        r = timing.in_child("memory", "raster", 256, membranes, args.threads)
        what = "spikes and all membrane potentials" if membranes else "spike raster"
        rows.append({
            "case": f"Peak memory, recording the {what} of 1 CIFAR image through vgg_star, T = 256",
            "ours": timing.mb(r["peak"]), "baseline": timing.mb(r["recording"]),
            "ratio": r["peak"] / r["recording"], "goal": "close to 1", "met": None,
            "note": (f"baseline = the recording itself ({r['neurons']:,} neurons x 256 steps; spikes as bool"
                     + (", potentials float32" if membranes else "") + f"); simulation took {r['wall']:.1f} s"
                     + ("" if r["exact_peak"] else "; peak is the whole process's (no /proc/self/clear_refs)")),
        })
    images, limit = (200, 2**26) if args.quick else (2000, 2**29)
    r = timing.in_child("memory", "split", images, 64, limit, args.threads)
    whole = f"; in one piece it would take about {timing.mb(r['whole'])}" if r.get("whole") else ""
    rows.append({
        "case": f"Peak memory, {images} MNIST images through mnist_cnn, T = 64, max_memory = {timing.mb(limit)}",
        "ours": timing.mb(r["peak"]), "baseline": timing.mb(limit), "ratio": r["peak"] / limit,
        "goal": "<= 1", "met": r["peak"] <= limit,
        "note": (f"{r['pieces']} pieces of <= {r['piece']} images, {r['wall']:.1f} s{whole}; the spike counts "
                 f"of every layer for all {images} images (always returned) take {timing.mb(r['counts'])} of the "
                 f"limit; {r['source']}"),
    })
    return rows


def book_rows(args):
    import book

    chapters = book.chapters()
    if not chapters:
        return [{"case": "The book in quick mode (CQ_QUICK=1)", "ours": "-", "baseline": "1.5 GiB", "ratio": None,
                 "goal": "peak <= 1.5 GiB", "met": None, "note": "no chapters yet (book/*.ipynb)"}]
    results = []
    for path in chapters:
        try:
            results.append(timing.in_child("book", "run_chapter", path))
        except Exception as error:  # noqa: BLE001
            results.append({"chapter": os.path.basename(path), "wall": float("nan"), "peak": 0, "error": str(error)})
    rows = []
    for r in results:
        rows.append({"case": f"Book chapter {r['chapter']}, CQ_QUICK=1", "ours": timing.mb(r["peak"]),
                     "baseline": "1.5 GiB", "ratio": r["peak"] / BOOK_PEAK_GOAL, "goal": "peak <= 1.5 GiB",
                     "met": r["peak"] <= BOOK_PEAK_GOAL and not r["error"],
                     "note": f"{r['wall']:.1f} s" + (f"; FAILED: {r['error']}" if r["error"] else "")})
    peak, wall = max(r["peak"] for r in results), sum(r["wall"] for r in results)
    failed = [r["chapter"] for r in results if r["error"]]
    rows.insert(0, {"case": f"The whole book ({len(results)} chapters), CQ_QUICK=1: peak kernel memory",
                    "ours": timing.mb(peak), "baseline": "1.5 GiB", "ratio": peak / BOOK_PEAK_GOAL,
                    "goal": "peak <= 1.5 GiB", "met": peak <= BOOK_PEAK_GOAL and not failed,
                    "note": f"wall time {wall:.0f} s for all chapters, each in a fresh kernel"
                            + (f"; failed: {', '.join(failed)}" if failed else "")})
    return rows


def widget_rows(args):
    """Each chapter's explorer built as its chapter builds it, every control dragged twice (widgets.py):
    the slowest update of the first drag or the walk (new settings simulate once) against the 100 ms goal."""
    import widgets

    rows = []
    for r in widgets.compare(widgets.EXPLORERS, old=os.environ.get("CQ_BENCH_OLD_WIDGETS")):
        case = f"Explorer update, chapter {r['chapter']}: widgets.{r['explorer']} (slowest of a slider drag)"
        s = widgets.summary(r["ours"])
        if s is None:
            rows.append({"case": case, "ours": "-", "baseline": timing.ms(WIDGET_GOAL), "ratio": None,
                         "goal": "<= 100 ms", "met": None, "note": f"failed: {r['ours']['error']}"})
            continue
        old = widgets.summary(r["old"]) if r["old"] else None
        per = ", ".join(f"{k} {timing.ms(widgets.worst(v))}" for k, v in r["ours"]["controls"].items())
        rows.append({"case": case, "ours": timing.ms(s[0]), "baseline": timing.ms(WIDGET_GOAL), "ratio": s[0] / WIDGET_GOAL,
                     "goal": "<= 100 ms", "met": s[0] <= WIDGET_GOAL,
                     "note": (f"build {r['ours']['build']:.1f} s; second drag worst {timing.ms(s[1])}, median "
                              f"{timing.ms(s[2])}; per control: {per}"
                              + (f"; old code in the same run: worst {timing.ms(old[0])}" if old else ""))})
    return rows


def markdown(rows, header):
    lines = [*header, "", "| # | case | ours | baseline | ratio | goal | met |", "|---|---|---:|---:|---:|---|---|"]
    for i, r in enumerate(rows, 1):
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        lines.append(f"| {i} | {r['case']} | {r['ours']} | {r['baseline']} | {ratio} | {r['goal']} | {met} |")
    lines += ["", "Notes:", ""]
    lines += [f"{i}. {r['note']}" for i, r in enumerate(rows, 1) if r.get("note")]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases, fewer repeats")
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=os.path.join(timing.ROOT, "BENCHMARKS.md"), help="file to write, or -")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine, began = timing.machine(), time.perf_counter()
    makers = {"simulation": simulation_rows, "memory": memory_rows, "book": book_rows, "widgets": widget_rows}
    rows = []
    for group in args.only:
        print(f"[bench] {group} ...", file=sys.stderr, flush=True)
        try:
            new = makers[group](args)
        except Exception as error:  # noqa: BLE001 - one broken group must not lose the others
            traceback.print_exc()
            new = [{"case": f"{group}", "ours": "-", "baseline": "-", "ratio": None, "goal": "-", "met": None,
                    "note": f"the {group} benchmarks failed: {type(error).__name__}: {error}"[:300]}]
        for r in new:
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
            print(f"  {r['case']}: ours {r['ours']}, baseline {r['baseline']}, ratio {ratio}", file=sys.stderr, flush=True)
        rows += new
    header = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python benchmarks/run.py{' --quick' if args.quick else ''}`) on {timing.today()}"
        f" in {time.perf_counter() - began:.0f} s.",
        "",
        f"Machine: {machine}"
        + (f", {os.getloadavg()[0]:.1f} at the end." if hasattr(os, "getloadavg") else "."),
        "",
        "Each baseline is measured in the same run as ours, interleaved with it (ours, baselines, then the",
        f"other way round), for at least {args.repeats} rounds and at least 2 s of ours after a warm-up. A shared",
        "machine only adds time, so a time is the fastest round and a ratio is ours / baseline of those",
        "(below 1: ours is faster); the notes give the median of the per-round ratios as a check. Memory is",
        "the rise of the peak resident set in a fresh process. Rerun with `make bench`; see",
        "`python benchmarks/run.py --help`.",
    ]
    text = markdown(rows, header)
    if args.out != "-" and os.path.exists(args.out):  # sections written by hand or by other scripts stay
        kept = open(args.out).read().split("\n## ", 1)
        text += "\n## " + kept[1] if len(kept) == 2 else ""
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"[bench] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
