"""The files of a run directory, read and written so that no file there can run code or pass damage on.

- ``checkpoint.pt`` holds only tensors and plain containers and loads with ``weights_only=True``: a
  planted pickle is refused, never executed. A truncated or damaged one is named, with the remedy.
- ``record.json``, ``evals.jsonl``: a damaged file is named, never a traceback.
- ``lock``: an OS file lock (``flock``) held while a process works on the run; the kernel releases it
  when the process dies, so ``kill -9`` leaves no stale lock. It holds the holder's pid and host.
- ``failed.json``: why a run stopped (diverged, damaged input, crash); a failed run is never recorded.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import socket
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fasbench import atomic
from fasbench.errors import FasbenchError

CHECKPOINT = "checkpoint.pt"
RECORD = "record.json"
EVALS = "evals.jsonl"
DONE = "done"
FAILED = "failed.json"
LOCK = "lock"
CHECKPOINT_KEYS = ("learner", "train_seconds")
RESTART_HINT = "rerun the same command with --restart to discard it and train from step 0"


class CorruptRunFileError(FasbenchError):
    """A file of a run directory that cannot be read (damaged, truncated, or not ours)."""


class RunLockedError(FasbenchError):
    """Another live process holds the run directory's lock."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


# -- checkpoints -----------------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically; refuse (at save time, not at the next resume) one that would not load
    with ``weights_only=True``."""
    import torch

    with atomic.atomic_path(path) as temporary:
        torch.save(dict(state), temporary)
        try:
            torch.load(temporary, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise FasbenchError(
                f"the learner's state_dict() holds objects other than tensors and plain containers ({error}); "
                "a checkpoint must load with torch.load(weights_only=True): store RNG states and the like as tensors"
            ) from error


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (None when there is none), loaded with ``weights_only=True``."""
    import torch

    if not path.exists():
        return None
    try:
        with zipfile.ZipFile(path) as archive:  # torch's format: every member carries a CRC-32
            broken = archive.testzip()
        if broken is not None:
            raise CorruptRunFileError(f"{path} is damaged: its part {broken!r} fails its CRC-32 check; {RESTART_HINT}")
    except zipfile.BadZipFile as error:
        raise CorruptRunFileError(f"{path} cannot be read (truncated or damaged: {error}); {RESTART_HINT}") from error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CorruptRunFileError(
            f"{path} was refused: it holds objects other than tensors and plain containers, which fasbench never "
            f"unpickles (a checkpoint could run code). Nothing in it was executed; {RESTART_HINT}"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CorruptRunFileError(f"{path} cannot be read (truncated or damaged: {first}); {RESTART_HINT}") from error
    if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
        raise CorruptRunFileError(
            f"{path} is not a fasbench checkpoint (keys {CHECKPOINT_KEYS} expected); {RESTART_HINT}"
        )
    return state


# -- records and evaluations ------------------------------------------------------------------------------
def read_json(path: Path, remedy: str) -> Any:
    """A JSON file of a run directory; a missing or damaged one is named with ``remedy``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CorruptRunFileError(f"{path} is missing; {remedy}") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptRunFileError(f"{path} is damaged ({error}); {remedy}") from error


def write_record(directory: Path, record: Mapping[str, Any], run_id: str) -> None:
    """``record.json``, then ``done`` holding the run id and the record's SHA-256 (the run's completion mark)."""
    atomic.write_json(directory / RECORD, record)
    digest = hashlib.sha256((directory / RECORD).read_bytes()).hexdigest()
    atomic.write_text(directory / DONE, f"{run_id}\nrecord.json sha256 {digest}\n")


def read_record(directory: Path) -> dict[str, Any]:
    """The record of a finished run (``done`` present), checked against the hash ``done`` holds; a damaged or
    altered one is named with the remedy."""
    remedy = f"the run's result is unusable: {RESTART_HINT}"
    try:
        mark = (directory / DONE).read_text(encoding="utf-8").split()
        data = (directory / RECORD).read_bytes()
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptRunFileError(f"{directory / RECORD} cannot be read ({error}); {remedy}") from error
    if "sha256" in mark and mark[mark.index("sha256") + 1 :][:1] != [hashlib.sha256(data).hexdigest()]:
        raise CorruptRunFileError(f"{directory / RECORD} is damaged (it differs from the hash in {DONE}); {remedy}")
    record = read_json(directory / RECORD, remedy)
    if not isinstance(record, dict) or "evaluations" not in record:
        raise CorruptRunFileError(f"{directory / RECORD} is not a run record; {RESTART_HINT}")
    return record


def truncate_evals(path: Path, step: int) -> None:
    """Forget evaluation lines written after the checkpoint we resume from (they will be recomputed)."""
    if not path.exists():
        return
    kept = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            line_step = json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise CorruptRunFileError(f"{path}:{number} is damaged ({error}); {RESTART_HINT}") from error
        if line_step <= step:
            kept.append(line)
    atomic.write_text(path, "".join(f"{line}\n" for line in kept))


# -- failures ---------------------------------------------------------------------------------------------
def mark_failed(directory: Path, error: BaseException, step: int | None) -> dict[str, Any]:
    """Write ``failed.json`` (why and when the run stopped) and return it."""
    text = str(error).strip() or type(error).__name__
    failure = {
        "status": "failed",
        "error": f"{type(error).__name__}: {text}",
        "first_line": text.splitlines()[0],
        "step": step,
        "time": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    atomic.write_json(directory / FAILED, failure)
    return failure


# -- the run lock -----------------------------------------------------------------------------------------
@contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold the run directory's lock for the block; ``RunLockedError`` naming the holder when it is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(
                f"{directory} is being run by {holder}; wait for it to finish (rerun the command then: a finished "
                "run is skipped) or stop that process", holder,
            ) from None  # fmt: skip
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def lock_holder(directory: Path) -> str | None:
    """Who holds the run directory's lock ("pid P on HOST since T"), or None when nobody does. Creates nothing;
    the probe takes a shared lock for an instant (a read-only open suffices, also where NFS emulates flock)."""
    path = directory / LOCK
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    except OSError as error:
        raise FasbenchError(f"cannot read the run lock {path}: {error}") from error
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError as error:
            raise FasbenchError(f"cannot probe the run lock {path} ({error}); is its filesystem lockable?") from error
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
