"""MSU-MFSD: MSU mobile face spoofing database (Wen, Han, Jain, IEEE TIFS 2015).

280 videos of the 35 released subjects: 70 live, 210 attacks. Each subject has one live and three
attack videos from each of two cameras, a laptop webcam (.mov, 640 x 480) and an Android phone
(.mp4, 720 x 480). Layout of the distribution, as this plugin reads it::

    <root>/scene01/real/real_client001_android_SD_scene01.mp4, real_client001_laptop_SD_scene01.mov
    <root>/scene01/attack/attack_client001_laptop_SD_{ipad_video,iphone_video,printed_photo}_scene01.mov
    <root>/train_sub_list.txt, test_sub_list.txt      (one subject number per line: 15 train, 20 test)

Names as bob.db.msu_mfsd_mod parses them: ``<real|attack>_client<NNN>_<android|laptop>_SD[_<instrument>]
_scene<NN>``; instruments ``ipad_video`` (high-definition replay), ``iphone_video`` (mobile replay) and
``printed_photo`` (print). Attack types: ``print``, ``replay_ipad``, ``replay_iphone``.

Splits: the official subject lists (MSU-MFSD has no dev set); a subject in neither list is left out
with a warning. The lists may also sit in ``scene01/``.

Faces: ``<video>.face`` beside each video (or under ``face_dir``), lines ``frame,x1,y1,x2,y2`` (box
corners; bob.db.msu_mfsd_mod reads them this way). Uncertain: whether every copy of the distribution
carries these files; without them choose ``face=dlib`` or ``face=center``. Six Android live videos
(clients 003, 005-009) were recorded upside down (bob.db.msu_mfsd_mod flips them); OpenCV applies the
rotation the files declare, which fasbench relies on.
"""

from __future__ import annotations

import re
from pathlib import Path

from fasbench_plugins.real.base import VideoDataset, log, warn_unrecognised
from fasbench_plugins.real.faces import FaceGeometry, read_box_file
from fasbench_plugins.real.loading import read_text_lines

from fasbench.errors import FasbenchError, MissingDataError
from fasbench.interfaces import LIVE, SPOOF, VideoRecord

LISTS = {"train": "train_sub_list.txt", "test": "test_sub_list.txt"}
INSTRUMENTS = {"printed_photo": "print", "ipad_video": "replay_ipad", "iphone_video": "replay_iphone"}
_NAME = re.compile(
    r"^(real|attack)_client(\d{3})_(android|laptop)_SD(?:_(ipad_video|iphone_video|printed_photo))?_scene(\d{2})$"
)


class MsuMFSD(VideoDataset):
    """MSU-MFSD (M): 35 subjects, laptop and Android cameras; print, iPad and iPhone replay (Wen et al., 2015)."""

    name = "msu"
    title = "MSU-MFSD"
    EXPECTED = ("scene01/real", "scene01/attack")
    ANNOTATION_HINT = "MSU-MFSD face locations are read from <video>.face files beside the videos."

    def subject_splits(self, root: Path) -> dict[int, str]:
        """Subject number -> split, from the official train / test subject lists."""
        splits: dict[int, str] = {}
        for split, name in LISTS.items():
            path = next((p for p in (root / name, root / "scene01" / name) if p.is_file()), None)
            if path is None:
                raise MissingDataError(f"{root} does not look like {self.title}: the subject list {name} is missing")
            for number, line in enumerate(read_text_lines(path), 1):
                if not line.strip():
                    continue
                if not line.strip().isdigit():
                    raise FasbenchError(f"{path}:{number}: expected a subject number, got {line.strip()!r}")
                subject = int(line)
                if splits.get(subject, split) != split:
                    raise FasbenchError(f"{self.title}: subject {subject} is in both {LISTS['train']} and {name}")
                splits[subject] = split
        return splits

    def scan(self, root: Path) -> list[VideoRecord]:
        splits = self.subject_splits(root)
        records, strangers, unlisted = [], [], set()
        for folder in sorted(root.glob("scene*/real")) + sorted(root.glob("scene*/attack")):
            for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mov", ".mp4")):
                match = _NAME.match(path.stem)
                if match is None or (match.group(1) == "attack") != (match.group(4) is not None):
                    strangers.append(path)
                    continue
                kind, client, device, instrument, scene = match.groups()
                if int(client) not in splits:
                    unlisted.add(client)
                    continue
                attack_type = "live" if kind == "real" else INSTRUMENTS[instrument]
                records.append(
                    VideoRecord(
                        video_id=path.relative_to(root).with_suffix("").as_posix(),
                        label=LIVE if kind == "real" else SPOOF,
                        attack_type=attack_type,
                        subject=client,
                        split=splits[int(client)],
                        path=str(path),
                        meta={"device": device, "scene": scene},
                    )
                )
        warn_unrecognised(self.title, strangers)
        if unlisted:
            log.warning("%s: subjects %s are in neither subject list and are left out", self.title, sorted(unlisted))
        return records

    def default_annotation_path(self, record: VideoRecord) -> Path:
        return Path(record.path).with_suffix(".face")

    def read_annotations(self, path: Path) -> dict[int, FaceGeometry]:
        return read_box_file(path, corners=True)
