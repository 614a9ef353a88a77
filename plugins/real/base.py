"""What the four real-dataset plugins share: root and option handling, and the frame pipeline.

A subclass only parses its dataset's layout into records and says where its face annotations live;
``frames`` (decode, sample, find the face, crop, depth-label) is the same for all of them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from fasbench_plugins.real.depth import DepthLabeller, make_depth_labeller
from fasbench_plugins.real.faces import FaceFinder, FaceGeometry, crop_face, make_face_finder, read_box_file
from fasbench_plugins.real.options import COMMON_OPTIONS, resolve_dataset_options
from fasbench_plugins.real.video import decode_frames

from fasbench.console import get_logger
from fasbench.errors import FasbenchError, MissingDataError, SkipVideo
from fasbench.interfaces import LIVE, Dataset, Frame, VideoRecord
from fasbench.options import Option
from fasbench.userconfig import load_user_config

# Bump when the preparation itself changes (sampling, cropping, depth), so old caches are rebuilt.
PREPARATION_VERSION = 1
ANNOTATION_SUFFIX = ".face"  # files under face_dir: <video_id>.face
MANIFESTS = Path(__file__).with_name("manifests")  # canonical video lists (video ids are facts of each dataset)

log = get_logger("fasbench.real")


class VideoDataset(Dataset):
    """A licensed video dataset read from its official distribution layout."""

    title: ClassVar[str] = ""  # the dataset's usual name, for messages
    EXPECTED: ClassVar[tuple[str, ...]] = ()  # paths under the root that the official layout has
    EXTRA_OPTIONS: ClassVar[Mapping[str, Option]] = {}
    ANNOTATION_HINT: ClassVar[str] = ""  # where this dataset's face annotations come from

    def __init__(self, root: str | None = None, **options: Any) -> None:
        config = load_user_config()
        given = {**config.dataset_options(self.name), **options}
        super().__init__(root if root is not None else config.root(self.name), **self._resolve(given))
        self.config_path = config.path
        self._finder: FaceFinder | None = None
        self._labeller: DepthLabeller | None = None

    @classmethod
    def _resolve(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        return resolve_dataset_options(cls.name, {**COMMON_OPTIONS, **cls.EXTRA_OPTIONS}, given)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple({**COMMON_OPTIONS, **cls.EXTRA_OPTIONS})

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """Every option with its default (what ``fasbench info`` shows)."""
        return {
            "root": None,
            **{name: option.default for name, option in {**COMMON_OPTIONS, **cls.EXTRA_OPTIONS}.items()},
        }

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for worker processes without the finder and labeller (rebuilt there on first use)."""
        state = dict(self.__dict__)
        state["_finder"] = state["_labeller"] = None
        return state

    def cache_options(self) -> dict[str, Any]:
        return {"dataset": self.name, "preparation_version": PREPARATION_VERSION, **self.options}

    def canonical_list(self) -> Path | None:
        """The official distribution's full video list, shipped in ``manifests/<name>.tsv``."""
        return MANIFESTS / f"{self.name}.tsv"

    # -- layout ------------------------------------------------------------------------------------
    def root_dir(self) -> Path:
        """The dataset folder, checked to exist and to hold the official layout's top-level entries."""
        if self.root is None:
            raise MissingDataError(
                f"no folder given for {self.title}: pass it as `fasbench prepare {self.name} --root DIR`, "
                f"or set it once in {self.config_path} as\n  roots:\n    {self.name}: /path/to/{self.title}"
            )
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise MissingDataError(f"{self.title} folder {root} does not exist (check --root or {self.config_path})")
        for entry in self.EXPECTED:
            if not (root / entry).is_dir():
                raise MissingDataError(
                    f"{root} does not look like {self.title}: {entry!r} is missing there "
                    f"(the official layout has {', '.join(self.EXPECTED)} in the dataset folder)"
                )
        return root

    @abstractmethod
    def scan(self, root: Path) -> list[VideoRecord]:
        """Parse the official layout, file names and protocol lists under ``root`` into records."""

    def records(self) -> list[VideoRecord]:
        root = self.root_dir()
        records = sorted(self.scan(root), key=lambda r: r.video_id)
        if not records:
            raise MissingDataError(f"{root}: no {self.title} video found in the official layout")
        self._check_face_source(records)  # (a video listed twice is refused by the core's prepare_domain)
        if any(r.label == LIVE for r in records):
            self._depth_labeller()  # fails now, not in every worker, when its folder is wrong
        return records

    # -- faces -----------------------------------------------------------------------------------
    def default_annotation_path(self, record: VideoRecord) -> Path | None:
        """Where the distribution keeps this video's face annotations; None when it ships none."""
        return None

    def annotation_path(self, record: VideoRecord) -> Path | None:
        """The annotation file to read: ``face_dir/<video_id>.face`` when given, else the dataset's own."""
        face_dir = self.options["face_dir"]
        if face_dir:
            return Path(face_dir).expanduser() / f"{record.video_id}{ANNOTATION_SUFFIX}"
        return self.default_annotation_path(record)

    def read_annotations(self, path: Path) -> dict[int, FaceGeometry]:
        """Per-frame face geometry from one of the dataset's own annotation files (``frame x y w h`` lines here)."""
        return read_box_file(path)

    def load_annotations(self, record: VideoRecord) -> dict[int, FaceGeometry]:
        """The face track of one video; ``SkipVideo`` naming the file when it is missing or unreadable.

        Files under ``face_dir`` are always ``frame x y width height`` lines, whatever the dataset.
        """
        path = self.annotation_path(record)
        if path is None or not path.is_file():
            raise SkipVideo(f"{record.path}: its face annotation file {path or '(none shipped)'} is missing")
        reader = read_box_file if self.options["face_dir"] else self.read_annotations
        try:
            return reader(path)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise SkipVideo(f"{record.path}: unreadable face annotation file {path}: {error}") from error

    def _check_face_source(self, records: list[VideoRecord]) -> None:
        self._face_finder()  # a missing optional detector fails here, once, not in every worker
        if self.options["face"] != "annotations":
            return
        paths = [self.annotation_path(r) for r in records]
        if any(p is not None and p.is_file() for p in paths):
            return
        looked = f" (looked for e.g. {paths[0]})" if paths[0] is not None else ""
        raise FasbenchError(
            f"{self.title}: no face annotation file found{looked}. {self.ANNOTATION_HINT} "
            "Choose how faces are found: --option face=dlib (offline detector, pip install 'fasbench[faces]'), "
            "--option face=center (central square of each frame), or --option face_dir=DIR (a folder of "
            f"<video_id>{ANNOTATION_SUFFIX} files, lines 'frame x y width height'); or set it once in "
            f"{self.config_path} as options: {{{self.name}: {{face: ...}}}}"
        )

    def _face_finder(self) -> FaceFinder:
        if self._finder is None:
            self._finder = make_face_finder(self.options)
        return self._finder

    def _depth_labeller(self) -> DepthLabeller:
        if self._labeller is None:
            self._labeller = make_depth_labeller(self.options)
        return self._labeller

    # -- frames ----------------------------------------------------------------------------------
    def frames(self, record: VideoRecord) -> Iterator[Frame]:
        """Decode the sampled frames, crop the face, label depth (zeros for spoofs).

        Frames without a face (or without a precomputed depth map) are left out; a video left with no
        frame raises ``SkipVideo`` naming the file and why.
        """
        options = self.options
        if not Path(record.path).is_file():  # before the annotations, so the message names the video
            raise SkipVideo(f"{record.path}: video file is missing")
        lookup = self._face_finder().for_video(self, record)
        labeller = self._depth_labeller() if record.label == LIVE else None
        spoof_depth = np.zeros((options["depth_size"],) * 2, np.uint8)
        crop_options = {"margin": options["margin"], "size": options["crop_size"], "align": options["align"]}
        sampled = no_face = no_depth = 0
        for index, image in decode_frames(
            record.path, every=options["every"], frames_per_video=options["frames_per_video"]
        ):
            sampled += 1
            face = lookup(index, image)
            crop = None if face is None else crop_face(image, face, **crop_options)
            if crop is None:
                no_face += 1
                continue
            depth = spoof_depth if labeller is None else labeller.depth(record, index, crop)
            if depth is None:
                no_depth += 1
                continue
            yield Frame(index, crop, _checked_depth(depth, options["depth"]))
        left_out = no_face + no_depth
        if left_out == sampled:
            reasons = [f"{no_face} had no face"] if no_face else []
            reasons += [f"{no_depth} had no depth map in {options['depth_dir']}"] if no_depth else []
            raise SkipVideo(f"{record.path}: no usable frame ({sampled} sampled: {', '.join(reasons)})")
        if left_out:
            log.debug("%s: %d of %d sampled frames left out (no face or no depth map)", record.path, left_out, sampled)


def _checked_depth(depth: np.ndarray, labeller: str) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.uint8:
        raise FasbenchError(f"depth labeller {labeller!r} returned {depth.dtype} {depth.shape}; expected uint8 h x w")
    return depth


def warn_unrecognised(title: str, paths: list[Path]) -> None:
    """Log, once per scan, the files whose names the official naming does not explain (they are left out)."""
    if paths:
        shown = ", ".join(str(p) for p in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        log.warning("%s: %d file(s) do not follow the official naming and are left out: %s", title, len(paths), shown)
