"""Preparing a domain into its frame cache: in parallel, resumable, never leaving a partial cache.

``prepare_domain`` runs ``dataset.frames`` over every record (in worker processes when ``workers > 0``),
keeps each video's frames as a part file (so an interrupted run continues where it stopped), then
writes the cache file atomically and removes the parts. ``ensure_prepared`` builds the dataset plugin
through the plugin registry and prepares it only when its cache is missing or stale.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import platform
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fasbench import __version__
from fasbench.console import err, get_logger
from fasbench.data import canonical
from fasbench.data.cache import (
    DEFAULT_CROP_SIZE,
    DEFAULT_DEPTH_SIZE,
    FORMAT_VERSION,
    StaleCacheError,
    cache_path,
    canonical_json,
    jsonable,
    open_cache,
    read_manifest,
)
from fasbench.data.work import WorkDir, exclusive, prepare_video, work_dir_of
from fasbench.data.writer import VideoFrames, write_cache
from fasbench.errors import FasbenchError, MissingDataError
from fasbench.interfaces import Dataset, VideoRecord
from fasbench.plugins import PluginRegistry, installed_plugins

log = get_logger("fasbench.data")


def _size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise FasbenchError(f"{what} must be a positive integer number of pixels, got {value!r}")
    return int(value)


def expected_manifest(dataset: Dataset, crop_size: int | None, depth_size: int | None) -> dict[str, Any]:
    """What a cache of ``dataset`` must record to be up to date (the crop-size policy lives here).

    Crops are stored at ``crop_size`` if given, else the dataset's ``crop_size`` option, else 256;
    depth maps likewise at ``depth_size``, its ``depth_size`` option, else 32. Frames that come back at
    other sizes are resized by the writer.
    """
    options = jsonable(dataset.cache_options())
    return {
        "format_version": FORMAT_VERSION,
        "dataset": dataset.name or type(dataset).__name__,
        "cache_options": options,
        "crop_size": _size(crop_size or options.get("crop_size", DEFAULT_CROP_SIZE), "crop_size"),
        "depth_size": _size(depth_size or options.get("depth_size", DEFAULT_DEPTH_SIZE), "depth_size"),
    }


def records_fingerprint(records: Sequence[VideoRecord]) -> dict[str, Any]:
    """Count and SHA-256 of the listed videos (ids, labels, attack types, subjects, splits, meta).

    Source paths are left out, so a dataset moved to another root keeps its cache; a root holding other
    videos (or a changed protocol list) does not.
    """
    listed = [jsonable({k: v for k, v in vars(r).items() if k != "path"}) for r in records]
    return {"count": len(records), "sha256": hashlib.sha256(canonical_json(listed).encode()).hexdigest()}


def stale_reason(manifest: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """Why a cache with ``manifest`` does not match ``expected`` (None when it does); names changed options."""
    changes = []
    for key, wanted in expected.items():
        found = manifest.get(key)
        if found == wanted:
            continue
        if isinstance(found, Mapping) and isinstance(wanted, Mapping):
            changes += [
                f"{key}.{name} was {found.get(name)!r}, now {wanted.get(name)!r}"
                for name in sorted(set(found) | set(wanted))
                if found.get(name) != wanted.get(name)
            ]
        else:
            changes.append(f"{key} was {found!r}, now {wanted!r}")
    return "; ".join(changes) or None


# -- workers -----------------------------------------------------------------------------------------
_worker_context: dict[str, Any] = {}


def _set_context(dataset: Dataset, work_path: str, key: str, crop_size: int, depth_size: int) -> None:
    work = WorkDir(Path(work_path), key)
    _worker_context.update(dataset=dataset, work=work, crop_size=crop_size, depth_size=depth_size)


def _init_worker(parent: int, *context: Any) -> None:
    """``parent`` is the preparing process's pid, passed in rather than read here: a spawned worker imports for
    seconds before it runs this, and a parent killed meanwhile would leave ``os.getppid()`` naming init."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool
    _kill_with_parent(parent)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _set_context(*context)


def _kill_with_parent(parent: int) -> None:
    """Linux: ask the kernel to SIGKILL this worker when its parent dies (prctl PR_SET_PDEATHSIG), at once and
    whatever the worker is busy with; the polling thread covers other systems and a parent already gone."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect (or before this worker started)
        os._exit(1)


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """A worker whose parent died (kill -9) exits within ``interval`` instead of preparing on alone."""
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def _prepare_one(task: tuple[int, VideoRecord]) -> tuple[int, int | str]:
    """Prepare one video into its part file; returns (position, frame count or skip reason)."""
    position, record = task
    context = _worker_context
    result = prepare_video(context["dataset"], record, context["crop_size"], context["depth_size"])
    if isinstance(result, VideoFrames):
        context["work"].write(position, result)
        return position, len(result.images)
    context["work"].write_skip(position, result)
    return position, result


@contextmanager
def _results(tasks: list[tuple[int, VideoRecord]], workers: int, context: tuple) -> Iterator[Iterator]:
    """Results of ``_prepare_one`` over ``tasks`` in completion order: in-process, or from spawned workers.

    Spawned, not forked: the parent may hold open HDF5 files, torch threads or CUDA state. A worker that
    cannot start (e.g. an unpicklable dataset) breaks the pool with an error instead of hanging. On
    Ctrl-C the queued videos are cancelled; those in flight still finish their part files.
    """
    if workers <= 0:
        previous = dict(_worker_context)
        _set_context(*context)
        try:
            yield map(_prepare_one, tasks)
        finally:
            _worker_context.clear()
            _worker_context.update(previous)
        return
    try:
        pickle.dumps((context, tasks[:1]))
    except Exception as error:  # pickling raises many types (AttributeError, TypeError, PicklingError)
        raise FasbenchError(
            f"dataset {context[0].name!r} cannot be sent to worker processes ({error}); "
            "prepare with --workers 0, or make the dataset and its records picklable"
        ) from error
    executor = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(), *context),
    )
    try:
        futures = [executor.submit(_prepare_one, task) for task in tasks]
        yield (future.result() for future in as_completed(futures))
    except BrokenProcessPool as error:
        raise FasbenchError(
            f"a preparation worker process died ({error}); run again with --workers 0 to see the error "
            "(the dataset and its records must be picklable, and a script must guard its main code with "
            "`if __name__ == '__main__':`)"
        ) from error
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("videos, {task.fields[rate]} frames/s"),
        TimeRemainingColumn(),
        console=err(),
        disable=not enabled,
    )


# -- preparation -------------------------------------------------------------------------------------
def _prepare_pending(
    records: list[VideoRecord], pending: list, workers: int, context: tuple, progress: bool, label: str
) -> dict[int, int | str]:
    """Prepare the ``pending`` (position, record) pairs; returns position -> frame count or skip reason."""
    outcomes: dict[int, int | str] = {}
    started, frames = time.monotonic(), 0
    with _progress(progress) as bar:
        task = bar.add_task(label, total=len(records), completed=len(records) - len(pending), rate="-")
        with _results(pending, workers, context) as results:
            for position, outcome in results:
                outcomes[position] = outcome
                if isinstance(outcome, str):
                    record = records[position]
                    log.warning("skipped video %s (%s): %s", record.video_id, record.path or "generated", outcome)
                else:
                    frames += outcome
                bar.update(task, advance=1, rate=f"{frames / max(time.monotonic() - started, 1e-9):,.0f}")
    return outcomes


def _check_records(dataset: Dataset, records: list[VideoRecord]) -> None:
    if not records:
        raise MissingDataError(f"dataset {dataset.name!r} lists no videos")
    seen: set[str] = set()
    for record in records:
        if record.video_id in seen:
            raise FasbenchError(f"dataset {dataset.name!r} lists video {record.video_id!r} twice")
        seen.add(record.video_id)


def _canonical(dataset: Dataset, prepared: list[VideoRecord]) -> dict[str, Any] | None:
    """The prepared videos against the dataset's canonical list (None when it has none); warns when they differ."""
    path = dataset.canonical_list()
    if path is None:
        return None
    result = canonical.compare(prepared, canonical.read_canonical(path, dataset.name))
    message = canonical.warning(dataset.name or type(dataset).__name__, result)
    if message:
        log.warning(message)
    return result


def _tool_versions(dataset: Dataset) -> dict[str, str]:
    import h5py
    import PIL

    return {
        "fasbench": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "pillow": PIL.__version__,
        "dataset_class": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
    }


def prepare_domain(
    dataset: Dataset,
    cache_path: str | Path,
    *,
    workers: int = 0,
    progress: bool = True,
    crop_size: int | None = None,
    depth_size: int | None = None,
    compression: str | None = None,
    force: bool = False,
) -> Path:
    """Prepare every video of ``dataset`` into the cache file ``cache_path``; returns the path.

    Does nothing when an up-to-date cache is already there (unless ``force``). Videos whose ``frames``
    raise are skipped, logged, and listed in the manifest's ``skipped``. With ``workers > 0`` the videos
    are prepared in that many spawned processes (``dataset`` and its records must be picklable). An
    interrupted preparation resumes: only the videos without a part file are prepared again.
    """
    target = Path(cache_path)
    records = list(dataset.records())  # listed first: a cache of other videos (another root) is stale
    _check_records(dataset, records)
    expected = {**expected_manifest(dataset, crop_size, depth_size), "records": records_fingerprint(records)}
    with exclusive(target):
        for stray in target.parent.glob(f".{target.name}.*.tmp"):  # left by a kill during a final write
            log.info("removing %s, left by an interrupted preparation", stray)
            stray.unlink(missing_ok=True)
        if target.exists() and not force:
            try:
                reason = stale_reason(read_manifest(target), expected)
                if reason is None:
                    open_cache(target)  # its tables (checksummed) must read: a damaged cache is rebuilt, not kept
            except StaleCacheError as error:
                reason = str(error)
            if reason is None:
                return target
            log.info("rebuilding the stale cache %s: %s", target, reason)
        key_text = canonical_json({**expected, "records": [jsonable(vars(r)) for r in records]})
        key = hashlib.sha256(key_text.encode()).hexdigest()
        if force:
            shutil.rmtree(work_dir_of(target), ignore_errors=True)
        work = WorkDir(work_dir_of(target), key)
        status = {position: work.status(position) for position in range(len(records))}
        pending = [(position, records[position]) for position, done in status.items() if done is None]
        if len(pending) < len(records):
            log.info(
                "resuming %s: %d of %d videos were already prepared",
                target.name,
                len(records) - len(pending),
                len(records),
            )
        context = (dataset, str(work.path), key, expected["crop_size"], expected["depth_size"])
        try:
            status.update(_prepare_pending(records, pending, workers, context, progress, target.stem))
        except KeyboardInterrupt:
            log.warning("interrupted: the videos prepared so far are kept; the same command continues from there")
            raise
        done = [position for position in range(len(records)) if isinstance(status[position], int)]
        skipped = [
            {"video_id": records[p].video_id, "path": records[p].path, "reason": status[p]}
            for p in range(len(records))
            if isinstance(status[p], str)
        ]
        if not done:
            reasons = "; ".join(f"{s['video_id']}: {s['reason']}" for s in skipped[:3])
            raise FasbenchError(f"no video of {expected['dataset']!r} could be prepared ({reasons}); no cache written")
        manifest = {
            **expected,
            "canonical": _canonical(dataset, [records[p] for p in done]),
            "source": {"root": getattr(dataset, "root", None)},
            "videos": len(done),
            "frames": sum(status[p] for p in done),
            "skipped": skipped,
            "compression": compression,
            "tools": _tool_versions(dataset),
        }
        write_cache(
            target,
            [(records[p], status[p]) for p in done],
            lambda index: work.load(done[index]),
            crop_size=expected["crop_size"],
            depth_size=expected["depth_size"],
            manifest=manifest,
            compression=compression,
        )
        work.remove()
    message = f"prepared {target}: {manifest['videos']} videos, {manifest['frames']} frames"
    if skipped:
        message += f", {len(skipped)} videos skipped (listed in the manifest)"
    log.info(message)
    return target


def ensure_prepared(
    dataset_name: str,
    options: Mapping[str, Any],
    cache_dir: str | Path | None = None,
    *,
    plugins: PluginRegistry | None = None,
    root: str | None = None,
    progress: bool = True,
    workers: int = 0,
    force: bool = False,
    compression: str | None = None,
) -> Path:
    """The cache path of ``dataset_name`` with ``options``, prepared first if it is missing or stale."""
    plugins = plugins or installed_plugins()
    dataset = plugins.build("datasets", {"type": dataset_name, **options}, root=root)
    path = cache_path(cache_dir, dataset_name, options)
    return prepare_domain(dataset, path, workers=workers, progress=progress, force=force, compression=compression)
