"""The ``synthetic`` dataset plugin: one synthetic domain, generated straight into the frame cache."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from fasbench_plugins.synthetic.domains import DOMAINS, DomainProfile
from fasbench_plugins.synthetic.face import draw_subject
from fasbench_plugins.synthetic.video import VideoSetup, render_video, rng

from fasbench.interfaces import LIVE, SPOOF, Dataset, Frame, VideoRecord
from fasbench.options import Option, resolve_options

GENERATOR_VERSION = 1  # bump whenever the rendered content changes, so old caches are rebuilt
KINDS = ("live", "print", "replay")
SPLIT_FRACTIONS = (0.5, 0.2)  # train, dev; the rest of the subjects is test
OPTIONS: dict[str, Option] = {
    "domain": Option(str, "O", "which domain: O, C, I or M", choices=tuple(DOMAINS)),
    "seed": Option(int, 0, "everything is drawn from it", minimum=0),
    "subjects": Option(int, 40, "subjects per domain", minimum=3),
    "videos_per_type": Option(int, 2, "videos per subject and kind (live, print, replay)", minimum=1),
    "frames_per_video": Option(int, 3, "frames per video", minimum=1),
    "crop_size": Option(int, 128, "side of the rendered crop", minimum=32),
    "depth_size": Option(int, 32, "side of the depth map", minimum=4),
}


def _resolve(options: Mapping[str, Any]) -> dict[str, Any]:
    given = dict(options)
    if isinstance(given.get("domain"), str):
        given["domain"] = given["domain"].upper()
    return resolve_options("dataset 'synthetic'", OPTIONS, given)


class SyntheticDataset(Dataset):
    """Procedural faces, prints and replays in four domains that stand in for O, C, I and M.

    Options: ``domain`` (O, C, I or M), ``seed``, ``subjects``, ``videos_per_type`` (per subject and kind:
    live, print, replay), ``frames_per_video``, ``crop_size``, ``depth_size``. Deterministic from the seed.
    """

    name = "synthetic"
    auto_prepare: ClassVar[bool] = True  # the runner prepares it on demand: it needs no files

    def __init__(self, root: str | None = None, **options: Any) -> None:
        super().__init__(root, **_resolve(options))
        self.profile: DomainProfile = DOMAINS[self.options["domain"]]

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(OPTIONS)

    def cache_options(self) -> dict[str, Any]:
        return {"generator_version": GENERATOR_VERSION, **self.options}

    def _splits(self) -> list[str]:
        count = self.options["subjects"]
        order = rng(self.options["seed"], self.profile.letter, "splits").permutation(count)
        train = max(1, round(count * SPLIT_FRACTIONS[0]))
        dev = max(1, round(count * SPLIT_FRACTIONS[1]))
        splits = [""] * count
        for rank, subject in enumerate(order):
            splits[subject] = "train" if rank < train else "dev" if rank < train + dev else "test"
        return splits

    def records(self) -> list[VideoRecord]:
        profile, seed = self.profile, self.options["seed"]
        records = []
        for subject, split in enumerate(self._splits()):
            subject_id = f"{profile.letter}{subject:03d}"
            for kind in KINDS:
                instruments = profile.prints if kind == "print" else profile.replays
                for take in range(self.options["videos_per_type"]):
                    generator = rng(seed, profile.letter, subject, kind, take, "setup")
                    meta = {
                        "camera": str(generator.integers(len(profile.cameras))),
                        "light": str(generator.integers(len(profile.lights))),
                        "scene": str(generator.integers(len(profile.scenes))),
                        "subject_index": str(subject),
                        "take": str(take),
                    }
                    attack = "live"
                    if kind != "live":  # instruments in turn, from a per-subject offset: balanced mixes
                        attack = instruments[(take + subject) % len(instruments)].name
                    label = LIVE if kind == "live" else SPOOF
                    records.append(
                        VideoRecord(f"{subject_id}/{kind}_{take}", label, attack, subject_id, split, meta=meta)
                    )
        return records

    def frames(self, record: VideoRecord) -> Iterator[Frame]:
        profile, options = self.profile, self.options
        subject_index, take = int(record.meta["subject_index"]), int(record.meta["take"])
        kind = record.video_id.rsplit("/", 1)[1].rsplit("_", 1)[0]
        setup = VideoSetup(
            profile=profile,
            subject=draw_subject(rng(options["seed"], profile.letter, subject_index, "subject"), profile.tone_range),
            kind=kind,
            attack_type=record.attack_type,
            camera=profile.cameras[int(record.meta["camera"])],
            light_setup=profile.lights[int(record.meta["light"])],
            scene=profile.scenes[int(record.meta["scene"])],
            keys=(options["seed"], profile.letter, subject_index, kind, take),
            size=options["crop_size"],
            depth_size=options["depth_size"],
            frames=options["frames_per_video"],
        )
        for index, image, depth in render_video(setup):
            yield Frame(index, image, depth)
