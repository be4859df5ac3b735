"""The `cqlearn` command: `cqlearn demo`, `cqlearn train`, `cqlearn eval`, `cqlearn --help`.

A user's mistake (a bad flag, a missing dataset or checkpoint, a model that cannot be converted) ends in
one `cqlearn: error: ...` message and exit code 2; `--debug` shows the traceback instead."""
import argparse
import sys

WEIGHT_BITS = (16, 12, 10, 9, 8, 7, 6, 5, 4)
MISTAKES = (ValueError, OSError)  # what the library raises for bad input, missing or unwritable files


def whole_number(minimum):
    """An argparse type: an int >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = f"whole number >= {minimum}"
    return parse


positive, count = whole_number(1), whole_number(0)


def _train_parser(commands):
    train = commands.add_parser(
        "train", help="staged CQ training (plain -> CQ) on mnist, fashion-mnist or cifar10, resumable",
        description="Train the plain ReLU network, then its CQ twin, saving a checkpoint after every epoch in "
        "--out (last.pt) and each stage's model when it ends; the final CQ-CNN is "
        "OUT/DATASET_MODEL_cqLEVELS.pt. Uses the GPU when there is one (data on the device, mixed precision). "
        "Under `torchrun --nproc_per_node=N -m cqlearn train ...` it trains with DistributedDataParallel.")
    train.add_argument("--model", required=True, help="mnist_cnn, vgg_small, vgg_star, vgg19, digits_cnn")
    train.add_argument("--dataset", required=True, help="mnist, fashion-mnist, cifar10 (or digits)")
    train.add_argument("--levels", type=positive, default=16, help="CQ levels L (default: 16)")
    train.add_argument("--mode", default="floor", choices=["floor", "round"], help="CQ mode (default: floor)")
    train.add_argument("--epochs", type=count, nargs="+", default=[10, 5], metavar="N",
                       help="epochs per stage: PLAIN CQ, or PLAIN CLAMP CQ, or one number for both (default: 10 5)")
    train.add_argument("--out", required=True, help="folder for the checkpoints")
    train.add_argument("--resume", action="store_true", help="go on from OUT/last.pt after an interruption")
    train.add_argument("--optimizer", default="adam", choices=["adam", "sgd"],
                       help="adam, or sgd with Nesterov momentum (default: adam)")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate, cosine decay per stage (default: 1e-3)")
    train.add_argument("--init", metavar="CHECKPOINT",
                       help="start from this checkpoint of the same model, e.g. another run's plain.pt")
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--batch-size", type=positive, default=128,
                       help="images per step (default: 128); under torchrun split evenly over the processes")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--width", type=float, help="width of mnist_cnn (channels) or multiplier of vgg_star/vgg19")
    train.add_argument("--dropout", type=float, help="dropout before the readout (model default: 0.2)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="random crop (padding 4) and flip (default: on for cifar10 only)")
    train.add_argument("--limit", type=positive, help="use only the first N training images (quick checks)")
    train.add_argument("--test-limit", type=positive, help="use only the first N test images")
    train.add_argument("--root", help="dataset folder (default: $CQLEARN_DATA, else ./data, then the checkout's data/)")
    train.add_argument("--download", action="store_true", help="let torchvision download a missing dataset into the root")
    train.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    train.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                       help="training arithmetic (torch.autocast; evaluation stays exact): bf16 on CPUs with "
                       "bfloat16 units, fp16 or bf16 on GPUs (default: fp16 with a GPU, else fp32)")
    train.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                       help="the older switch: --amp is --precision bf16 on the CPU, fp16 on a GPU; --no-amp is fp32")
    train.add_argument("--threads", type=positive, help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (for log files)")


def _eval_parser(commands):
    ev = commands.add_parser(
        "eval", help="convert a CQ checkpoint and compare CNN, CQ-CNN and SNN at each T",
        description="Convert the CQ-CNN in CHECKPOINT at each T (and with n-bit weights), print accuracy, "
        "agreement with the CQ-CNN and per-layer exact spike counts, and append the rows to --results. "
        "Under torchrun each process evaluates whole batches of the test set and the counts are added up.")
    ev.add_argument("checkpoint", help="a CQ checkpoint written by `cqlearn train` or cq.save")
    ev.add_argument("--timesteps", type=positive, nargs="+", default=[16, 32, 64], metavar="T")
    ev.add_argument("--encoding", nargs="+", default=["spikes"], choices=["current", "spikes", "poisson"])
    ev.add_argument("--neuron", nargs="+", default=["if"], choices=["if", "signed"],
                    help="the paper's IF neuron, or the signed IF neuron that may send -1 spikes (chapter 11); "
                    "a row each (default: if)")
    ev.add_argument("--flush", type=count, default=0, metavar="K",
                    help="K steps after the T input steps with no input, so that late input still fires (chapter 11; "
                         "one simulation per T then); default: 0")
    ev.add_argument("--weight-bits", type=whole_number(2), nargs="*", metavar="BITS",
                    help=f"also with n-bit weights, no retraining (e.g. {' '.join(map(str, WEIGHT_BITS))}); "
                    "no values: that whole list")
    ev.add_argument("--float-readout", action="store_true",
                    help="keep the readout layer in float32 when quantizing weights (default: n-bit too)")
    ev.add_argument("--no-float", action="store_true",
                    help="skip the float-weight rows (measure only the --weight-bits rows)")
    ev.add_argument("--dataset", help="dataset to test on (default: the checkpoint's)")
    ev.add_argument("--limit", type=positive, help="only the first N test images")
    ev.add_argument("--layer-images", type=count, default=1000,
                    help="images for the per-layer exact-match statistics (default: 1000)")
    ev.add_argument("--batch-size", type=positive, default=250)
    ev.add_argument("--results", help="append the rows to this .csv or .md file")
    ev.add_argument("--baseline", metavar="PLAIN_CHECKPOINT",
                    help="also convert this plain ReLU network naively (cqlearn.baseline, data-based normalisation)")
    ev.add_argument("--percentile", type=float, nargs="+", default=[99.9],
                    help="percentiles of the activations that set the baseline's scales, a row each; "
                    "100 is the data-based max (default: 99.9)")
    ev.add_argument("--figure", metavar="PATH", help="also draw accuracy against T into this .png")
    ev.add_argument("--record", action="store_true",
                    help="also store the measured accuracies in the checkpoint's metadata")
    ev.add_argument("--root", help="dataset folder (default: $CQLEARN_DATA, else ./data, then the checkout's data/)")
    ev.add_argument("--download", action="store_true", help="let torchvision download a missing dataset into the root")
    ev.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    ev.add_argument("--threads", type=positive, help="CPU threads for torch")
    ev.add_argument("--no-progress", action="store_true")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cqlearn", description="CQ training and conversion of CNNs into "
                                     "spiking networks (Yan, Zhou and Wong, AAAI 2021).")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train plain -> CQ on the embedded digits, convert, compare",
                               description="Train a CNN on scikit-learn's 8x8 digits (plain, then clamp, then CQ), "
                               "convert it into a spiking network, print accuracies and write figures.")
    demo.add_argument("--out", default="cq-demo", help="folder for figures and checkpoints (default: cq-demo)")
    demo.add_argument("--levels", type=positive, default=16, help="CQ levels L (default: 16)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quick", action="store_true", help="a few epochs only, to check that it runs")
    _train_parser(commands)
    _eval_parser(commands)

    for command in commands.choices.values():
        command.add_argument("--debug", action="store_true", help="on an error, show the whole traceback")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        dispatch(args, argv)
    except MISTAKES as error:
        if args.debug:
            raise
        parser.exit(2, f"cqlearn: error: {error}\n")


def dispatch(args, argv):
    """Run the subcommand that args names."""
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    from . import distributed
    if distributed.launched() and args.command == "demo":
        raise ValueError("the demo runs in one process; start it without torchrun (`cqlearn demo`).")
    try:  # under torchrun: join the other processes (gloo on CPUs, nccl on GPUs)
        args.device = distributed.setup(getattr(args, "device", None))
        _run(args, argv)
    finally:
        distributed.teardown()


def _run(args, argv):
    if args.command == "demo":
        from .demo import run
        run(args.out, args.levels, args.seed, args.quick)
    elif args.command == "train":
        from .experiments import TrainConfig, train_run
        kwargs = {k: v for k, v in (("width", args.width), ("dropout", args.dropout)) if v is not None}
        if "width" in kwargs and kwargs["width"] == int(kwargs["width"]) and args.model in ("mnist_cnn", "digits_cnn"):
            kwargs["width"] = int(kwargs["width"])
        config = TrainConfig(args.model, args.dataset, args.levels, args.mode, args.epochs, args.lr, args.batch_size,
                             args.weight_decay, args.seed, args.limit, args.test_limit, args.augment, kwargs,
                             args.optimizer, args.init)
        train_run(args.out, config, root=args.root, download=args.download, device=args.device, amp=args.amp,
                  resume=args.resume, progress=not args.no_progress, command=argv,
                  precision=args.precision)
    elif args.command == "eval":
        from .evaluation import eval_run
        bits = WEIGHT_BITS if args.weight_bits == [] else args.weight_bits
        eval_run(args.checkpoint, args.timesteps, args.encoding, bits or (), not args.float_readout, args.dataset,
                 args.limit, args.layer_images, args.batch_size, args.results, args.record, args.root, args.device,
                 progress=not args.no_progress, command=argv, baseline=args.baseline, percentiles=args.percentile,
                 figure=args.figure, float_weights=not args.no_float, download=args.download,
                 neurons=args.neuron, flush=args.flush)


if __name__ == "__main__":
    main()
