"""The book in quick mode: every book/*.ipynb executed top to bottom with CQ_QUICK=1.

Each chapter runs in a fresh process (`timing.in_child`) that starts a kernel with nbclient, so the
kernel is that process's only child: its peak resident memory is getrusage(RUSAGE_CHILDREN) after it
exits. A sampler also sums the resident memory of the kernel and anything it starts (data loader
workers) every 50 ms, and the larger of the two is reported.
"""
import glob
import os
import resource
import threading
import time

import timing

BOOK = os.path.join(timing.ROOT, "book")


def chapters():
    return sorted(glob.glob(os.path.join(BOOK, "*.ipynb")))


def _tree_rss(pid):
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def run_chapter(path, timeout=1200):
    import nbclient
    import nbformat

    os.environ["CQ_QUICK"] = "1"
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(path)}})
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.05):
            process = getattr(getattr(client.km, "provisioner", None), "process", None) if client.km else None
            if process is not None:
                peak[0] = max(peak[0], _tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as failure:  # noqa: BLE001 - reported in the table
        error = f"{type(failure).__name__}: {str(failure).strip().splitlines()[-1][:160] if str(failure).strip() else ''}"
    wall = time.perf_counter() - began
    done.set()
    sampler.join()
    kernel_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"chapter": os.path.basename(path), "wall": wall, "peak": max(peak[0], kernel_peak),
            "sampled": peak[0], "kernel": kernel_peak, "error": error}
