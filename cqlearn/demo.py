"""`cqlearn demo`: the whole method on the embedded digits data in under a minute (README, chapter 4).

Train a plain CNN, fine-tune its clamp and CQ twins, convert the CQ-CNN into a spiking network, and
compare the three on the test set at a few time steps and encodings; write figures of one image.
"""
import time
from pathlib import Path

import matplotlib
import torch

from . import analysis, data, models, plots
from .checkpoints import save
from .conversion import convert
from .files import atomic_write
from .train import evaluate, seed_everything, staged

TIMESTEPS = (16, 32, 64)
ENCODINGS = ("current", "spikes", "poisson")


def run(out="cq-demo", levels=16, seed=0, quick=False, progress=True):
    """Run the demo, print a table and return its rows (dicts)."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One thread: this small net trains 3-10x faster than on two busy ones, and the result repeats
    # bit for bit on any machine, whatever its number of cores.
    torch.set_num_threads(1)
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_set, test_set = data.load("digits", "train"), data.load("digits", "test")
    seed_everything(seed)
    epochs = (3, 1, 2) if quick else (25, 5, 15)
    stages = staged(models.digits_cnn(), train_set, test_set, levels, epochs=epochs, seed=seed,
                    device="cpu", progress=progress)
    plain, cq_model = stages["plain"][0], stages["cq"][0]
    plain_acc, cq_acc = evaluate(plain, test_set), evaluate(cq_model, test_set)
    save(plain, out / "digits_cnn_plain.pt", dataset="digits", accuracy=plain_acc, epochs=epochs[0], seed=seed)

    rows = [{"network": "CNN (ReLU)", "encoding": "-", "timesteps": "-", "accuracy": plain_acc, "agreement": None},
            {"network": f"CQ-CNN (L={levels})", "encoding": "-", "timesteps": "-", "accuracy": cq_acc,
             "agreement": 1.0}]
    snn_results = {}
    for encoding in ENCODINGS:
        for T in TIMESTEPS[:1] if quick else TIMESTEPS:
            snn = convert(cq_model, T, encoding)
            accuracy = evaluate(snn, test_set)
            agreement = analysis.prediction_agreement(cq_model, snn, test_set)
            snn_results.setdefault(encoding, {})[T] = accuracy
            rows.append({"network": "SNN", "encoding": encoding, "timesteps": T, "accuracy": accuracy,
                         "agreement": agreement})
    first = analysis.layer_agreement(cq_model, convert(cq_model, levels, "current"), test_set)[0]
    save(cq_model, out / f"digits_cnn_cq{levels}.pt", dataset="digits", levels=levels, timesteps=levels,
         encoding="current", accuracy=cq_acc, plain_accuracy=plain_acc, snn_accuracy=snn_results, seed=seed)

    print(table(rows))
    print(f"first spiking layer, current encoding, T = {levels}: {100 * first['exact']:.2f} % of spike counts "
          f"exact (mean error {first['mae_spikes']:.3f} spikes)")
    figures = write_figures(cq_model, test_set, levels, snn_results, cq_acc, out, plt)
    print(f"\nwrote {len(figures)} figures and 2 checkpoints to {out.resolve()}/:")
    for path in figures:
        print(f"  {path.name}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return rows


def table(rows):
    lines = [f"{'network':<18} {'encoding':<9} {'T':>3}  {'accuracy':>8}  {'agrees with CQ-CNN':>18}",
             "-" * 62]
    for r in rows:
        agreement = "-" if r["agreement"] is None else f"{100 * r['agreement']:.2f} %"
        lines.append(f"{r['network']:<18} {r['encoding']:<9} {r['timesteps']:>3}  {100 * r['accuracy']:7.2f} %"
                     f"  {agreement:>18}")
    return "\n".join(lines)


def write_figures(model, test_set, levels, snn_results, cq_acc, out, plt):
    image = test_set[0][0][None]
    recording = convert(model, 2 * levels, "spikes").run(image, record=True)
    paths = []

    ax = plots.raster(recording.spikes[0][:, 0], title=f"Layer 0 spikes, one test digit, T = {2 * levels}")
    paths.append(_save(ax, out / "raster.png", plt))

    counts = recording.counts[0][0].flatten()
    busy = [int(i) for i in counts.argsort(descending=True)[[0, len(counts) // 8, len(counts) // 4]]]
    ax = plots.traces(recording.membrane[0][:, 0], recording.spikes[0][:, 0], busy,
                      title="Layer 0 membrane potentials, three neurons")
    paths.append(_save(ax, out / "membrane.png", plt))

    ax = plots.accuracy_vs_timesteps({f"SNN, {e} encoding": r for e, r in snn_results.items()}, cq_acc)
    paths.append(_save(ax, out / "accuracy_vs_timesteps.png", plt))
    return paths


def _save(ax, path, plt):
    with atomic_write(path) as f:
        ax.figure.savefig(f, format="png", dpi=120)
    plt.close(ax.figure)
    return path
