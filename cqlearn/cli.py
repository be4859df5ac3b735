"""The `cqlearn` command: `cqlearn demo`, `cqlearn --help`."""
import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cqlearn", description="CQ training and conversion of CNNs into "
                                     "spiking networks (Yan, Zhou and Wong, AAAI 2021).")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train plain -> CQ on the embedded digits, convert, compare",
                               description="Train a CNN on scikit-learn's 8x8 digits (plain, then clamp, then CQ), "
                               "convert it into a spiking network, print accuracies and write figures.")
    demo.add_argument("--out", default="cq-demo", help="folder for figures and checkpoints (default: cq-demo)")
    demo.add_argument("--levels", type=int, default=16, help="CQ levels L (default: 16)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quick", action="store_true", help="a few epochs only, to check that it runs")

    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run
        run(args.out, args.levels, args.seed, args.quick)


if __name__ == "__main__":
    main()
