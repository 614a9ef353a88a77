"""Canonical video lists: the full video set of a dataset's official distribution, to check a copy against.

A dataset plugin may ship one (``Dataset.canonical_list()``: a tab-separated file with the header
``video_id split label attack_type subject`` and one line per video). ``fasbench prepare`` compares the
videos it found with it ("4,950 of 4,950 videos", or exactly which are missing or extra, and which
disagree on label, split or attack type) and writes the result into the cache manifest, from where
every run using that cache records it. A partial copy is still prepared, with a warning: subsets and
test trees work, and their numbers say what they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError

HEADER = ("video_id", "split", "label", "attack_type", "subject")
LISTED = 20  # missing / extra ids kept in a manifest (the counts are complete)


@dataclass(frozen=True)
class CanonicalVideo:
    """One line of a canonical list."""

    video_id: str
    split: str
    label: int
    attack_type: str
    subject: str


@dataclass(frozen=True)
class CanonicalList:
    """A dataset's canonical video list and the SHA-256 of its file."""

    name: str
    videos: tuple[CanonicalVideo, ...]
    sha256: str


def read_canonical(path: str | Path, name: str | None = None) -> CanonicalList:
    """Parse a canonical list file; a malformed line is refused with the file and line named."""
    path = Path(path)
    data = path.read_bytes()
    lines = data.decode("utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise FasbenchError(f"{path}: a canonical video list starts with the header {' '.join(HEADER)} (tab-separated)")
    videos = []
    for number, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        if len(fields) != len(HEADER) or fields[2] not in ("0", "1"):
            raise FasbenchError(f"{path}:{number}: expected {len(HEADER)} tab-separated fields with label 0 or 1")
        videos.append(CanonicalVideo(fields[0], fields[1], int(fields[2]), fields[3], fields[4]))
    return CanonicalList(name or path.stem, tuple(videos), hashlib.sha256(data).hexdigest())


def compare(records: Sequence[Any], canonical: CanonicalList) -> dict[str, Any]:
    """How a dataset copy's records (``video_id``, ``split``, ``label``, ``attack_type``) match ``canonical``."""
    expected = {video.video_id: video for video in canonical.videos}
    found = {record.video_id: record for record in records}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    differing = sorted(
        video_id
        for video_id in set(found) & set(expected)
        if (found[video_id].split, found[video_id].label, found[video_id].attack_type)
        != (expected[video_id].split, expected[video_id].label, expected[video_id].attack_type)
    )
    return {
        "name": canonical.name,
        "sha256": canonical.sha256,
        "expected": len(expected),
        "present": len(expected) - len(missing),
        "missing_count": len(missing),
        "missing": missing[:LISTED],
        "extra_count": len(extra),
        "extra": extra[:LISTED],
        "differing_count": len(differing),
        "differing": differing[:LISTED],
    }


def describe(result: dict[str, Any]) -> str:
    """``"4,950 of 4,950 videos"``, with the missing / extra / differing counts when there are any."""
    text = f"{result['present']:,} of {result['expected']:,} videos"
    extras = [
        f"{result[key + '_count']:,} {key}" for key in ("missing", "extra", "differing") if result[key + "_count"]
    ]
    return f"{text} ({', '.join(extras)})" if extras else text


def warning(dataset: str, result: dict[str, Any]) -> str | None:
    """A one-paragraph warning naming what a copy lacks or adds, or None for a complete copy."""
    if not any(result[key + "_count"] for key in ("missing", "extra", "differing")):
        return None
    parts = [f"{dataset}: the copy has {describe(result)} of the official distribution ({result['name']} list)"]
    for key, meaning in (
        ("missing", "missing"),
        ("extra", "not in the official list"),
        ("differing", "with another label, split or attack type than the official list"),
    ):
        if result[key + "_count"]:
            more = result[key + "_count"] - len(result[key])
            shown = ", ".join(result[key]) + (f" and {more} more" if more > 0 else "")
            parts.append(f"{meaning}: {shown}")
    return "; ".join(parts) + ". Prepared anyway: the counts go into the cache manifest and every run using it."
