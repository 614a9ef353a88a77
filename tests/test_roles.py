"""Data conventions: which videos train, validate and are scored; held-out subjects; canonical video lists."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fasbench_plugins.real import base as real_base

from fasbench.benchmark import load_benchmark
from fasbench.data.canonical import compare, describe, read_canonical, warning
from fasbench.data.roles import _rank, held_out_subjects, resolve_protocol, resolve_source, resolve_target
from fasbench.errors import FasbenchError

SPEC = load_benchmark()
FASBENCH, ALL_SOURCES, OFFICIAL = (SPEC.convention(n) for n in ("fasbench", "all_sources", "official"))
MANIFESTS = Path(real_base.__file__).with_name("manifests")
PINNED = {  # the shipped lists, byte for byte (sources: plugins/real/manifests, README "Official video lists")
    "oulu": "ee699fe5ea9ac9cc29e7b0c3cd361166e194c9ca6b2729313d1604e91ea66f61",
    "casia": "7975f558277b0fdb495488cb550e1d7497d7c8c94c837d2eb69e309cf9c85fae",
    "replay": "4344d03cadf525fcc89afaa1bf6bf1668f0abff9c411f829c93d7f8deb8f14d3",
    "msu": "c8c59bc1163b4912de52036d736b52d4e6279cbe424457d9d460f9a1bc66fde9",
}


@dataclass(frozen=True)
class Video:
    video_id: str
    label: int
    subject: str
    split: str


def domain(subjects, split="train", prefix="s"):
    """Two videos (one live, one spoof) per subject."""
    return [
        Video(f"{prefix}{s}/{kind}", int(kind == "live"), f"{prefix}{s}", split)
        for s in subjects
        for kind in ("live", "spoof")
    ]


def tunables(**changes):
    return {**FASBENCH.tunables(), **changes}


def test_held_out_subjects_are_seeded_subject_disjoint_and_never_train():
    videos = domain(range(20), "train") + domain(range(20, 30), "test")
    roles = resolve_source("C", "casia", videos, FASBENCH, tunables=tunables())
    held = set(roles.held_out_subjects)
    assert len(held) == 6 and roles.validation_from == "holdout"  # 20 % of 30 subjects
    assert {v.split("/")[0] for v in roles.validation} == held
    assert not held & {v.split("/")[0] for v in roles.train}, "a held-out subject trains"
    assert len(roles.train) + len(roles.validation) == len(videos)
    again = resolve_source("C", "casia", list(reversed(videos)), FASBENCH, tunables=tunables())
    assert again.held_out_subjects == roles.held_out_subjects, "the draw depends on the listing order"
    other_seed = resolve_source("C", "casia", videos, FASBENCH, tunables=tunables(holdout_seed=1))
    assert set(other_seed.held_out_subjects) != held
    other_dataset = resolve_source("C", "msu", videos, FASBENCH, tunables=tunables())
    assert set(other_dataset.held_out_subjects) != held, "the draw is keyed by the dataset too"


def test_the_held_out_part_is_stable_when_subjects_are_added_elsewhere():
    c_videos, m_videos = domain(range(20), prefix="c"), domain(range(15), prefix="m")
    target = ("O", "oulu", domain(range(5), "test", prefix="o"))
    before = resolve_protocol(FASBENCH, {"C": ("casia", c_videos), "M": ("msu", m_videos)}, target)
    grown = {"C": ("casia", c_videos), "M": ("msu", m_videos + domain(range(15, 40), prefix="m"))}
    after = resolve_protocol(FASBENCH, grown, ("O", "oulu", target[2] + domain(range(5, 9), "test", prefix="o")))
    assert after.sources["C"] == before.sources["C"]
    # within the domain: the held-out subjects are the first round(0.2 n) of a ranking in which each subject's
    # place depends on its own name only (a new subject can enter the held-out part; no other changes places)
    for n in (10, 15, 20):
        ranking = sorted((f"s{i}" for i in range(n)), key=lambda subject: _rank(0, "msu", subject))
        assert held_out_subjects(domain(range(n)), 0.2, 0, "msu") == ranking[: round(0.2 * n)]


def test_held_out_videos_always_hold_both_classes():
    # subjects 0-8 have only live videos; the draw extends down the ranking until a spoof is held out
    videos = [Video(f"s{s}/live", 1, f"s{s}", "train") for s in range(9)] + domain([9, 10, 11])
    held = held_out_subjects(videos, 0.2, 0, "toy")
    labels = {v.label for v in videos if v.subject in held}
    assert labels == {0, 1}


def test_dev_split_validates_where_a_source_has_one():
    videos = domain(range(4), "train") + domain(range(4, 6), "dev") + domain(range(6, 9), "test")
    roles = resolve_source("O", "oulu", videos, FASBENCH, tunables=tunables())
    assert roles.validation_from == "dev" and roles.held_out_subjects == ()
    assert {v[:2] for v in roles.validation} == {"s4", "s5"} and len(roles.train) == 14  # train + test splits
    official = resolve_source("O", "oulu", videos, OFFICIAL, tunables=tunables())
    assert len(official.train) == 8 and official.validation == roles.validation
    everything = resolve_source("O", "oulu", videos, ALL_SOURCES, tunables=tunables())
    assert len(everything.train) == 18 and everything.validation == () and everything.validation_from is None


def test_targets_are_scored_on_every_split_or_the_official_test_split():
    videos = domain(range(2), "train") + domain(range(2, 4), "test")
    assert len(resolve_target("M", "msu", videos, FASBENCH).target) == 8
    assert len(resolve_target("M", "msu", videos, OFFICIAL).target) == 4


def test_empty_or_one_class_roles_are_refused_before_training_with_what_to_do():
    with pytest.raises(FasbenchError, match=r"target M \(msu\) under convention 'official'.*no video in split test"):
        resolve_target("M", "msu", domain(range(3), "train"), OFFICIAL)
    with pytest.raises(FasbenchError, match="holds 1 subject.*data.convention=all_sources"):
        resolve_source("C", "casia", domain([0]), FASBENCH, tunables=tunables())
    # only one subject has spoof videos: holding it out leaves training without spoofs
    one_spoofer = [Video(f"s{s}/live", 1, f"s{s}", "train") for s in range(3)] + domain([3])
    seed = next(seed for seed in range(100) if held_out_subjects(one_spoofer, 0.2, seed, "casia") == ["s3"])
    with pytest.raises(FasbenchError, match=r"training part .* no spoof one"):
        resolve_source("C", "casia", one_spoofer, FASBENCH, tunables=tunables(holdout_seed=seed))
    with pytest.raises(FasbenchError, match="leaves no subject to train on: lower data.holdout_fraction"):
        resolve_source("C", "casia", domain(range(4)), FASBENCH, tunables=tunables(holdout_fraction=0.9))
    with pytest.raises(FasbenchError, match="no live one"):
        resolve_target("O", "oulu", [Video("a", 0, "a", "test")], FASBENCH)


def canonical(name):
    return read_canonical(MANIFESTS / f"{name}.tsv")


@pytest.mark.parametrize(
    "name, total, live, splits",
    [
        ("oulu", 4950, 990, {"train": 1800, "dev": 1350, "test": 1800}),
        ("casia", 600, 150, {"train": 240, "test": 360}),
        ("replay", 1200, 200, {"train": 360, "dev": 360, "test": 480}),
        ("msu", 280, 70, {"train": 120, "test": 160}),
    ],
)
def test_canonical_lists_hold_the_official_counts(name, total, live, splits):
    assert canonical(name).sha256 == PINNED[name], f"{name}.tsv changed: update PINNED only with its source named"
    videos = canonical(name).videos
    assert len(videos) == total and sum(v.label for v in videos) == live
    assert {s: sum(v.split == s for v in videos) for s in splits} == splits and len(
        {v.video_id for v in videos}
    ) == total


def test_the_rule_generated_lists_follow_the_naming_rules():
    oulu = {
        f"{ {'train': 'Train', 'dev': 'Dev', 'test': 'Test'}[split] }_files/{phone}_{session}_{user:02d}_{access}"
        for phone, session, access in itertools.product(range(1, 7), range(1, 4), range(1, 6))
        for user, split in [(u, "train" if u <= 20 else "dev" if u <= 35 else "test") for u in range(1, 56)]
    }
    assert {v.video_id for v in canonical("oulu").videos} == oulu
    files = ["1", "2", "3", "4", "5", "6", "7", "8", "HR_1", "HR_2", "HR_3", "HR_4"]
    casia = {f"train_release/{n}/{f}" for n in range(1, 21) for f in files}
    casia |= {f"test_release/{n}/{f}" for n in range(1, 31) for f in files}
    assert {v.video_id for v in canonical("casia").videos} == casia


def test_role_counts_of_the_full_datasets():
    spec = SPEC.suite("real")
    lists = {name: canonical(name).videos for name in ("oulu", "casia", "replay", "msu")}

    def counts(protocol, convention):
        p = SPEC.protocol(protocol)
        dataset = {letter: spec.domains[letter].dataset for letter in (*p.sources, p.target)}
        sources = {letter: (dataset[letter], lists[dataset[letter]]) for letter in p.sources}
        target = (p.target, dataset[p.target], lists[dataset[p.target]])
        found = resolve_protocol(convention, sources, target).counts()
        return {letter: {role: c["videos"] for role, c in roles.items()} for letter, roles in found.items()}

    assert counts("ICM_O", FASBENCH) == {
        "I": {"train": 840, "validation": 360},
        "C": {"train": 480, "validation": 120},
        "M": {"train": 224, "validation": 56},
        "O": {"target": 4950},
    }
    assert counts("OCI_M", ALL_SOURCES) == {
        "O": {"train": 4950},
        "C": {"train": 600},
        "I": {"train": 1200},
        "M": {"target": 280},
    }
    assert counts("OCM_I", OFFICIAL) == {
        "O": {"train": 1800, "validation": 1350},
        "C": {"train": 192, "validation": 48},
        "M": {"train": 96, "validation": 24},
        "I": {"target": 480},
    }


def test_a_partial_copy_is_compared_with_the_official_list():
    listed = canonical("msu")
    copy = list(listed.videos[:10]) + [replace(listed.videos[10], split="train")]
    copy.append(replace(listed.videos[0], video_id="scene01/real/somebody_else"))
    result = compare(copy, listed)
    assert (result["present"], result["expected"], result["missing_count"], result["extra_count"]) == (11, 280, 269, 1)
    assert result["differing_count"] == int(listed.videos[10].split != "train")
    assert result["extra"] == ["scene01/real/somebody_else"] and len(result["missing"]) == 20
    assert describe(result).startswith("11 of 280 videos (269 missing, 1 extra")
    assert "and 249 more" in warning("msu", result)
    assert warning("msu", compare(listed.videos, listed)) is None
    assert describe(compare(listed.videos, listed)) == "280 of 280 videos"
