"""Synaptic operations per image of a shipped checkpoint's SNN (cq.energy.count), for RESULTS.md.

    python benchmarks/synops.py data/cifar10_vgg_small_cq16.pt --root DATA --limit 300 --timesteps 16 32 64

Prints a markdown row per neuron, encoding and T: SynOps per image (additions, readout included), the
first layer's MACs under "current" encoding, the CNN's MACs, spikes per image and the energy ratio
CNN / SNN (45 nm, cq.energy.energy). Averaged over the first --limit test images."""
import argparse

import torch

import cqlearn as cq


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--root")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--neuron", nargs="+", default=["if", "signed"])
    parser.add_argument("--encoding", nargs="+", default=["current", "spikes"])
    parser.add_argument("--flush", type=int, default=0, help="flush steps after the input (chapter 11)")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    model = cq.load(args.checkpoint)
    images = cq.data.load(model.meta["dataset"], "test", root=args.root, limit=args.limit).images
    print(f"{args.checkpoint} ({model.meta.get('mode')} mode), flush {args.flush}, first {len(images)} test images")
    print("| neuron | encoding | T | SynOps per image | first-layer MACs | CNN MACs | spikes per image | "
          "energy CNN / SNN |\n|---|---|---|---|---|---|---|---|")
    for neuron in args.neuron:
        for encoding in args.encoding:
            for T in args.timesteps:
                snn = cq.convert(model, T, encoding, neuron, flush=args.flush)
                totals = {}
                for x in torch.split(images, args.batch_size):
                    for i, row in enumerate(cq.energy.count(snn, x)):
                        for key in ("synops", "snn_macs", "macs", "cnn_adds", "spikes"):
                            totals.setdefault(i, {}).setdefault(key, 0.0)
                            totals[i][key] += row.get(key, 0.0) * len(x)
                rows = [{k: v / len(images) for k, v in t.items()} for t in totals.values()]
                e = cq.energy.energy(rows)
                s = lambda key: sum(r[key] for r in rows)  # noqa: E731
                print(f"| {neuron} | {encoding} | {T} | {s('synops') / 1e6:.2f} M | {s('snn_macs') / 1e6:.2f} M | "
                      f"{s('macs') / 1e6:.2f} M | {s('spikes') / 1e3:.1f} k | {e['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
