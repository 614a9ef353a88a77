"""Scores files (HDF5): datasets ``score``, ``label`` (1 = live), ``video_id``, ``frame_index``, ``attack_type``.

The run's attributes are HDF5 attributes of the file: numbers, strings and booleans as themselves,
anything else (lists, dicts, None) as JSON text. The RF-Meta seed code's layout (``score`` and ``label``
only, possibly batch-shaped) is read too: each frame then counts as its own video.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fasbench.atomic import atomic_path
from fasbench.errors import FasbenchError, MissingDataError
from fasbench.evaluation.table import COLUMNS, ScoreTable

FORMAT_ATTR = "fasbench_scores_format"
FORMAT_VERSION = 1
JSON_ATTRS = "fasbench_json_attrs"  # names of the attributes stored as JSON text
LAYOUT_ATTR = "layout"  # set by read_scores: "fasbench" or "seed" (score and label only)
_STRING_COLUMNS = ("video_id", "attack_type")


def write_scores(path: str | Path, table: ScoreTable, attrs: Mapping[str, Any] | None = None) -> None:
    """Write ``table`` and the run's ``attrs`` to ``path`` atomically (a reader never sees half a file)."""
    attrs = dict(attrs or {})
    reserved = sorted(k for k in attrs if k in (FORMAT_ATTR, JSON_ATTRS, LAYOUT_ATTR))
    if reserved:
        raise FasbenchError(f"scores file attributes {reserved} are reserved by fasbench; rename them")
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        for name in COLUMNS:
            values = getattr(table, name)
            if name in _STRING_COLUMNS:
                encoded = _utf8(values)
                data = encoded.astype(h5py.string_dtype("utf-8", encoded.itemsize))
            else:
                data = values.astype(np.int8) if name == "label" else values
            handle.create_dataset(name, data=data, fletcher32=True)  # checksummed: damage is an error, not a number
        handle.attrs[FORMAT_ATTR] = FORMAT_VERSION
        as_json = []
        for key, value in attrs.items():
            if isinstance(value, (bool, int, float, str, np.generic)):
                handle.attrs[key] = value
            else:
                try:
                    handle.attrs[key] = json.dumps(value, sort_keys=True)
                except TypeError as error:
                    raise FasbenchError(f"scores file attribute {key!r} is not JSON-serialisable: {error}") from error
                as_json.append(key)
        handle.attrs[JSON_ATTRS] = json.dumps(as_json)


def read_scores(path: str | Path) -> tuple[ScoreTable, dict[str, Any]]:
    """The table and the run's attributes of a scores file (fasbench's layout or the seed code's).

    The attributes get ``layout``: 'fasbench', or 'seed' for a file with only ``score`` and ``label``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"scores file {str(path)!r} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise FasbenchError(f"{str(path)!r} is not a readable HDF5 scores file ({error})") from error
    with handle:
        present = sorted(handle.keys())
        missing = [name for name in COLUMNS if name not in handle]
        if "score" in missing or "label" in missing:
            raise FasbenchError(
                f"scores file {str(path)!r} has no 'score' and 'label' datasets "
                f"(it has: {', '.join(present) or 'none'})"
            )
        if missing and len(missing) < len(COLUMNS) - 2:
            raise FasbenchError(
                f"scores file {str(path)!r} has some of fasbench's datasets but lacks {', '.join(missing)}; "
                "write it with fasbench.evaluation.write_scores, or keep only 'score' and 'label'"
            )
        try:
            columns = {
                name: _strings(handle[name]) if name in _STRING_COLUMNS else handle[name][()]
                for name in COLUMNS
                if name in handle
            }
        except OSError as error:
            raise FasbenchError(f"{str(path)!r} is damaged: a stored chunk failed its checksum ({error})") from error
        attrs = _read_attrs(handle.attrs)
    if missing:
        score, label = np.ravel(columns["score"]), np.ravel(columns["label"])
        if score.shape != label.shape:
            raise FasbenchError(f"scores file {str(path)!r}: {score.size} scores but {label.size} labels")
        attrs[LAYOUT_ATTR] = "seed"
        return ScoreTable.from_labels(score, label), attrs
    attrs[LAYOUT_ATTR] = "fasbench"
    return ScoreTable(**columns), attrs


def _utf8(values: np.ndarray) -> np.ndarray:
    """Fixed-length UTF-8 bytes (stored as such: far faster to write and read than variable-length strings)."""
    try:
        return values.astype(np.bytes_)  # ASCII, the common case, converts without a Python loop
    except UnicodeEncodeError:
        return np.char.encode(values, "utf-8")


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    """A text column as a numpy str array (fixed- or variable-length UTF-8, or numbers used as ids)."""
    info = h5py.check_string_dtype(dataset.dtype)
    if info is None:
        return np.asarray(dataset[()]).astype(str)
    if info.length is None:
        return np.asarray(dataset.asstr()[()], dtype=str)
    raw = np.asarray(dataset[()])
    try:
        return raw.astype(str)
    except UnicodeDecodeError:
        return np.char.decode(raw, "utf-8")


def _read_attrs(stored: Mapping[str, Any]) -> dict[str, Any]:
    as_json = set(json.loads(stored.get(JSON_ATTRS, "[]")))
    attrs = {}
    for key, value in stored.items():
        if key in (FORMAT_ATTR, JSON_ATTRS):
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if key in as_json:
            value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        attrs[key] = value
    return attrs
