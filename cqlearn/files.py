"""Writing files so that no reader ever sees half of one and no writer loses another's work (chapter 9).

Everything cqlearn writes (checkpoints, results tables, figures) goes through `atomic_write`: the bytes
go to a new file with an unpredictable name in the target's folder (tempfile.mkstemp creates it, so a
symlink planted there is never followed), which is renamed over the target only once it is complete.
A crash or an error leaves the previous file intact and no temporary file behind.

`locked` serialises read-modify-write cycles (say two `cqlearn eval --record` on one checkpoint)
with an exclusive lock on a sidecar file `NAME.lock` (filelock: fcntl.flock on Linux and macOS).
"""
import contextlib
import os
import tempfile
from pathlib import Path

from filelock import FileLock

_UMASK = os.umask(0o022)  # read the umask (the only way is to set it) and put it back at once
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_options):
    """A file object for writing `path` whole: `with atomic_write(path) as f: f.write(...)`. The target
    keeps its permissions (new files get the usual ones: 0o666 less the umask)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name inside it.")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise type(error)(error.errno, f"cannot write {path}: no file can be created in "
                          f"{folder.resolve()} ({error.strerror}); choose a folder you can write to",
                          ) from error
    try:
        with os.fdopen(descriptor, mode, **open_options) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock for `path` (on the sidecar file `path.lock`) against every other process
    that takes it too; wrap each read-modify-write of a shared file in it."""
    with FileLock(f"{path}.lock"):
        yield
