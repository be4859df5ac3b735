"""The rows `cqlearn eval` measures, and where they go (chapter 9): printed, appended to a .csv or markdown
table, recorded in the checkpoint's metadata, drawn as accuracy against T. Every file is written
atomically (cqlearn.files); tables and checkpoints are changed under a lock, so evaluations run side by
side lose nothing.
"""
import csv
import platform
import shlex
from pathlib import Path

import torch

from .checkpoints import read, save
from .files import atomic_write, locked


def machine():
    """One line naming the hardware and software that produced a number."""
    if torch.cuda.is_available():
        hardware = torch.cuda.get_device_name()
    else:
        hardware = f"{cpu_name()}, {torch.get_num_threads()} thread(s)"
    return f"{hardware}; torch {torch.__version__}, Python {platform.python_version()}"


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform module knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor() or platform.machine())


def command_line(argv):
    """The `cqlearn` command that is running, for the record (None when called from Python)."""
    return None if argv is None else "cqlearn " + " ".join(shlex.quote(a) for a in argv)


COLUMNS = ["date", "dataset", "model", "network", "levels", "mode", "neuron", "encoding", "timesteps", "flush", "weights",
           "readout", "images", "cnn", "cq_cnn", "snn", "snn_minus_converted", "agreement", "layer_exact", "machine", "command", "checkpoint"]


FIGURE_FORMATS = (".png", ".svg", ".pdf")


def baseline_name(percentile):
    return "ReLU baseline (max)" if percentile == 100 else f"ReLU baseline (p{percentile:g})"


def save_figure(rows, path):
    """Accuracy against T of every float-weight network in `rows` (CQ per encoding, each baseline), with
    the CQ-CNN as a dashed line: the figure that shows what CQ training buys (chapter 7)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import accuracy_vs_timesteps
    curves = {}
    for row in rows:
        if row["weights"] == "float32":
            label = f"{row['network']} SNN, {row['encoding']}"
            curves.setdefault(label, {})[row["timesteps"]] = row["snn"]
    first = rows[0]
    fig, ax = plt.subplots(figsize=(7, 4))
    accuracy_vs_timesteps(curves, first["cq_cnn"], ax=ax,
                          title=f"{first['dataset']}, {first['model']}: SNN accuracy against T "
                                f"({first['images']} test images)")
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format=Path(path).suffix[1:].lower(), dpi=120)
    plt.close(fig)


def _pct(value, signed=False):
    return "-" if value is None else f"{100 * value:{'+' if signed else ''}.2f}"


def flush_label(row):
    """", flush K" for a row simulated with K flush steps (chapter 11), else ""."""
    return f", flush {row['flush']}" if row.get("flush") else ""


def format_row(row):
    return (f"{row['dataset']} {row['model']} {row['network']} L={row['levels']} {row.get('neuron', 'if')} {row['encoding']} "
            f"T={row['timesteps']}{flush_label(row)} weights {row['weights']} (readout {row['readout']}), {row['images']} images: "
            f"CNN {_pct(row['cnn'])} %, CQ-CNN {_pct(row['cq_cnn'])} %, SNN {_pct(row['snn'])} % "
            f"({_pct(row['snn_minus_converted'], True)} points against the network converted), "
            f"agreement {_pct(row['agreement'])} %, exact counts per layer {row.get('layer_exact', '-')} %")


def append_results(rows, path):
    """Append rows to a .csv (with a header when new) or a markdown table (header when new). A file that
    exists keeps its own columns (one written by an older cqlearn too). The file is rewritten whole and
    atomically under a lock, so evaluations run side by side lose no row."""
    path = Path(path)
    with locked(path):
        text = path.open(newline="").read() if path.exists() else ""  # csv rows end in \r\n: keep them
        columns = header(text, path.suffix) or COLUMNS
        with atomic_write(path, "w", newline="") as f:
            f.write(text)
            if path.suffix == ".csv":
                writer = csv.DictWriter(f, columns, extrasaction="ignore", restval="-")
                if not text:
                    writer.writeheader()
                writer.writerows(rows)
            else:
                if not text:
                    f.write("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n")
                f.writelines(markdown_row(row, columns) for row in rows)


def header(text, suffix):
    """The column names in the first line of a results file's text ([] when empty)."""
    first = text.splitlines()[0] if text else ""
    if suffix == ".csv":
        return next(csv.reader([first]), [])
    return [cell.strip() for cell in first.strip().strip("|").split("|")] if first else []


def markdown_row(row, columns=COLUMNS):
    percent = {"cnn", "cq_cnn", "snn", "agreement"}
    cells = [_pct(row.get(c)) if c in percent else _pct(row[c], True) if c == "snn_minus_converted"
             else str(row.get(c, "-")) for c in columns]
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |\n"


def record_in_checkpoint(path, model, meta, rows):
    """Store the rows' SNN accuracies in the checkpoint's metadata (atomically, through cq.save):
    snn_accuracy[encoding][T] for float weights, weight_bits_accuracy[encoding][T][bits] (the key is
    "ENCODING signed" for the signed neuron's rows, ", flush K" added with flush steps), each with the
    number of test images in snn_images / weight_bits_images. The metadata is read again just before
    saving, so that evaluations run side by side add to it; a value measured on fewer images never
    replaces one measured on more."""
    with locked(path):
        _record(path, model, {**meta, **read(path)["meta"]}, rows)


def _record(path, model, meta, rows):
    for row in rows:
        float_weights = row["weights"] == "float32"
        values = meta.setdefault("snn_accuracy" if float_weights else "weight_bits_accuracy", {})
        images = meta.setdefault("snn_images" if float_weights else "weight_bits_images", {})
        key = row["timesteps"] if float_weights else row["weight_bits"]
        encoding = (row["encoding"] + ("" if row.get("neuron", "if") == "if" else f" {row['neuron']}")  # "spikes signed"
                    + flush_label(row))  # "current signed, flush 4"
        values, images = values.setdefault(encoding, {}), images.setdefault(encoding, {})
        if not float_weights:
            values, images = values.setdefault(row["timesteps"], {}), images.setdefault(row["timesteps"], {})
        if row["images"] >= images.get(key, 0):
            values[key], images[key] = row["snn"], row["images"]
        if not float_weights:
            meta["weight_bits_readout"] = row["readout"] != "float32"
    save(model, path, **meta)
