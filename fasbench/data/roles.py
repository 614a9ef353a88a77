"""Which videos play which role in a run: source training, source validation, target.

A protocol under a data convention (registry.yaml ``conventions``) resolves, before any training, to
three lists of video ids per domain. Everything here works on any objects with ``video_id``, ``label``,
``subject`` and ``split`` (cache rows, dataset records, canonical manifest rows), so the same rules
give the counts of ``fasbench info`` and the frames a run reads.

Source validation: the source's ``dev`` split where it has one (``dev_or_holdout``), otherwise a
held-out part of its subjects: the subjects are ranked by SHA-256 of (holdout seed, dataset, subject),
and the first ``round(fraction x subjects)`` (at least one) are held out, extended down the ranking
until the held-out videos hold a live and a spoof one. The draw depends only on that domain's subject
names and the seed: not on the order the videos are listed, the run's seed, the learner or the other
domains, so every run of a benchmark validates on the same videos. Validation videos never train.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fasbench.benchmark import ALL_SPLITS, ConventionSpec
from fasbench.errors import FasbenchError
from fasbench.interfaces import LIVE, SPLITS, SPOOF

ROLES = ("train", "validation", "target")


class VideoLike(Protocol):
    video_id: str
    label: int
    subject: str
    split: str


@dataclass(frozen=True)
class DomainRoles:
    """The videos of one domain in each role (empty tuples for roles it does not play)."""

    letter: str
    dataset: str
    train: tuple[str, ...] = ()
    validation: tuple[str, ...] = ()
    validation_from: str | None = None  # "dev", "holdout" or None
    held_out_subjects: tuple[str, ...] = ()
    target: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProtocolRoles:
    """A protocol's resolved roles under one convention, and counts of each."""

    convention: str
    sources: Mapping[str, DomainRoles]
    target: DomainRoles
    labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # letter -> video id -> label

    def as_json(self) -> dict[str, Any]:
        """Every role's video ids per domain (what a run records as ``videos.json``)."""
        domains = {}
        for roles in (*self.sources.values(), self.target):
            entry: dict[str, Any] = {"dataset": roles.dataset}
            for role in ROLES:
                if getattr(roles, role):
                    entry[role] = list(getattr(roles, role))
            if roles.validation_from:
                entry["validation_from"] = roles.validation_from
            if roles.held_out_subjects:
                entry["held_out_subjects"] = list(roles.held_out_subjects)
            domains[roles.letter] = entry
        return {"convention": self.convention, "domains": domains}

    @property
    def sha256(self) -> str:
        """Hash of every role's video ids: two runs with the same hash saw the same videos in the same roles."""
        text = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """letter -> role -> {videos, live, spoof}."""
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for roles in (*self.sources.values(), self.target):
            labels = self.labels.get(roles.letter, {})
            for role in ROLES:
                ids = getattr(roles, role)
                if ids:
                    live = sum(1 for v in ids if labels.get(v) == LIVE)
                    counts.setdefault(roles.letter, {})[role] = {
                        "videos": len(ids),
                        "live": live,
                        "spoof": len(ids) - live,
                    }
        return counts


def _splits_of(rule: str | Sequence[str]) -> tuple[str, ...]:
    return SPLITS if rule == ALL_SPLITS else tuple(rule)


def _rank(seed: int, dataset: str, subject: str) -> str:
    return hashlib.sha256(f"{seed}\x00{dataset}\x00{subject}".encode()).hexdigest()


def held_out_subjects(videos: Sequence[VideoLike], fraction: float, seed: int, dataset: str) -> list[str]:
    """The subjects whose videos validate instead of training (see the module docstring)."""
    subjects = sorted({v.subject for v in videos}, key=lambda s: (_rank(seed, dataset, s), s))
    count = max(1, round(fraction * len(subjects)))
    held = subjects[:count]
    while count < len(subjects) and not _both_classes([v for v in videos if v.subject in set(held)]):
        count += 1
        held = subjects[:count]
    return held


def _both_classes(videos: Iterable[VideoLike]) -> bool:
    labels = {v.label for v in videos}
    return LIVE in labels and SPOOF in labels


def _need_both_classes(videos: Sequence[VideoLike], what: str, fix: str) -> None:
    labels = [v.label for v in videos]
    missing = [name for name, label in (("live", LIVE), ("spoof", SPOOF)) if label not in labels]
    if missing:
        found = f"{len(videos)} videos" if videos else "no video"
        raise FasbenchError(f"{what} has {found} and no {' or '.join(missing)} one; {fix}")


def resolve_source(
    letter: str, dataset: str, videos: Sequence[VideoLike], convention: ConventionSpec, *, tunables: Mapping[str, Any]
) -> DomainRoles:
    """Training and validation videos of one source domain; refuses a role left empty or one-class."""
    name = f"source {letter} ({dataset}) under convention {convention.name!r}"
    present = sorted({v.split for v in videos})
    pool_splits = _splits_of(convention.train)
    pool = [v for v in videos if v.split in pool_splits]
    validation: list[VideoLike] = []
    validation_from, held = None, []
    if convention.validation == "dev_or_holdout" and "dev" in present:
        validation = [v for v in videos if v.split == "dev"]
        validation_from = "dev"
    elif convention.validation != "none":
        if len({v.subject for v in pool}) < 2:
            raise FasbenchError(
                f"{name}: its {_describe(pool_splits)} holds {len({v.subject for v in pool})} subject(s), so no "
                "subject can be held out for validation while another trains; use a dataset copy with more "
                "subjects or a convention without validation (data.convention=all_sources)"
            )
        held = held_out_subjects(pool, tunables["holdout_fraction"], tunables["holdout_seed"], dataset)
        subjects = len({v.subject for v in pool})
        if len(held) == subjects:
            raise FasbenchError(
                f"{name}: holding out {tunables['holdout_fraction']:.0%} of its {subjects} subjects (at least one "
                "live and one spoof video) leaves no subject to train on: lower data.holdout_fraction"
            )
        validation = [v for v in pool if v.subject in set(held)]
        validation_from = "holdout"
    excluded = {v.video_id for v in validation}
    train = [v for v in pool if v.video_id not in excluded]
    if not train:
        raise FasbenchError(
            f"{name}: no video left to train on (splits present: {', '.join(present)}; training uses "
            f"{_describe(pool_splits)}). Choose a convention whose training splits this dataset has "
            "(`fasbench info CONVENTION`), or lower data.holdout_fraction"
        )
    _need_both_classes(
        train, f"{name}: the training part ({_describe(pool_splits)}, validation removed)",
        "every source must train on both classes: lower data.holdout_fraction or check the dataset copy",
    )  # fmt: skip
    if validation_from is not None:
        _need_both_classes(
            validation, f"{name}: the validation part ({validation_from})",
            "source validation needs both classes: check the dataset copy or use data.convention=all_sources",
        )  # fmt: skip
    return DomainRoles(
        letter, dataset, tuple(v.video_id for v in train), tuple(v.video_id for v in validation),
        validation_from, tuple(held),
    )  # fmt: skip


def resolve_target(letter: str, dataset: str, videos: Sequence[VideoLike], convention: ConventionSpec) -> DomainRoles:
    """The target videos to score; refuses an empty or one-class target."""
    splits = _splits_of(convention.target)
    present = sorted({v.split for v in videos})
    chosen = [v for v in videos if v.split in splits]
    where = f"target {letter} ({dataset}) under convention {convention.name!r}"
    if not chosen:
        raise FasbenchError(
            f"{where}: it has no video in {_describe(splits)} (its splits: {', '.join(present)}); prepare the "
            "dataset's full copy or choose another convention (data.convention=fasbench scores every split)"
        )
    _need_both_classes(chosen, f"{where}: {_describe(splits)}", "check the dataset copy (`fasbench prepare`)")
    return DomainRoles(letter, dataset, target=tuple(v.video_id for v in chosen))


def resolve_protocol(
    convention: ConventionSpec,
    sources: Mapping[str, tuple[str, Sequence[VideoLike]]],
    target: tuple[str, str, Sequence[VideoLike]],
    tunables: Mapping[str, Any] | None = None,
) -> ProtocolRoles:
    """Every role of a protocol; ``sources``: letter -> (dataset, videos); ``target``: (letter, dataset, videos)."""
    tunables = {**convention.tunables(), **(tunables or {})}
    resolved = {
        letter: resolve_source(letter, dataset, videos, convention, tunables=tunables)
        for letter, (dataset, videos) in sources.items()
    }
    target_letter, target_dataset, target_videos = target
    labels = {letter: {v.video_id: v.label for v in videos} for letter, (_, videos) in sources.items()}
    labels[target_letter] = {v.video_id: v.label for v in target_videos}
    return ProtocolRoles(
        convention.name, resolved, resolve_target(target_letter, target_dataset, target_videos, convention), labels
    )


def _describe(splits: Sequence[str]) -> str:
    return "every split" if tuple(splits) == SPLITS else f"split {'+'.join(splits)}"


def convention_from_data(data: Mapping[str, Any]) -> ConventionSpec:
    """The convention a resolved run config's ``data`` section spells out (rules and tunables)."""
    as_rule = lambda value: value if isinstance(value, str) else tuple(value)  # noqa: E731
    return ConventionSpec(
        name=str(data["convention"]),
        train=as_rule(data["train"]),
        validation=str(data["validation"]),
        target=as_rule(data["target"]),
        holdout_fraction=data["holdout_fraction"],
        holdout_seed=data["holdout_seed"],
        train_frames_per_video=data["train_frames_per_video"],
        eval_frames_per_video=data["eval_frames_per_video"],
    )


def resolve_run_roles(config: Mapping[str, Any], caches: Mapping[str, Any]) -> ProtocolRoles:
    """The roles of a resolved run config over its opened domain caches (letter -> DomainCache)."""
    convention = convention_from_data(config["data"])
    sources = {letter: (caches[letter].name, caches[letter].records) for letter in config["sources"]}
    target = config["target"]
    return resolve_protocol(convention, sources, (target, caches[target].name, caches[target].records))
