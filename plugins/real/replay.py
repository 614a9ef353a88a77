"""Idiap Replay-Attack (Chingovska, Anjos, Marcel, BIOSIG 2012).

1,200 videos (320 x 240, .mov) of 50 clients: 200 live, 1,000 attacks; train 360, devel 360, test 480
(the counts bob.db.replay checks). Layout of the official distribution, as this plugin reads it::

    <root>/{train,devel,test}/real/client001_session01_webcam_authenticate_adverse_1.mov
    <root>/{train,devel,test}/attack/{fixed,hand}/attack_highdef_client001_session01_highdef_photo_adverse.mov
    <root>/face-locations/{train,devel,test}/.../<same name>.face     (separate archive; lines "frame x y w h")

Real names: ``client<NNN>_session<NN>_webcam_authenticate_<light>_<take>``; attack names:
``attack_<device>_client<NNN>_session<NN>_<sample device>_<photo|video>_<light>`` with device ``print``
(hard-copy photo), ``mobile`` (iPhone screen) or ``highdef`` (iPad screen), light ``controlled`` or
``adverse``, and the support (``fixed`` or ``hand``) from the folder (bob.db.replay parses them the same
way). Enrolment videos (``..._webcam_enroll_<light>``, for face recognition) are not part of the
anti-spoofing protocols and are not read. Attack types: ``print``, ``replay_mobile_photo``, ``replay_mobile_video``,
``replay_highdef_photo``, ``replay_highdef_video`` (a photo or video shown on a screen is a replay).

Faces: the face-location files give one box per frame, ``frame x y width height`` (all zero where the
detector found none; bob.db.replay reads them with ``numpy.loadtxt``). A frame without a box borrows
the nearest box within ``face_gap`` frames.
"""

from __future__ import annotations

import re
from pathlib import Path

from fasbench_plugins.real.base import VideoDataset, warn_unrecognised

from fasbench.interfaces import LIVE, SPOOF, VideoRecord

SPLITS = {"train": "train", "devel": "dev", "test": "test"}
SUPPORTS = ("fixed", "hand")
_REAL = re.compile(r"^client(\d{3})_session(\d{2})_webcam_authenticate_(controlled|adverse)_(\d+)$")
_ENROLL = re.compile(r"^client\d{3}_session\d{2}_webcam_enroll_(controlled|adverse)$")  # enrolment: not read
_ATTACK = re.compile(
    r"^attack_(print|mobile|highdef)_client(\d{3})_session(\d{2})_(mobile|highdef)_(photo|video)_(controlled|adverse)$"
)


class ReplayAttack(VideoDataset):
    """Idiap Replay-Attack (I): 50 clients; print, mobile and high-definition screen attacks (2012)."""

    name = "replay"
    title = "Replay-Attack"
    EXPECTED = tuple(SPLITS)
    ANNOTATION_HINT = (
        "Replay-Attack's face locations come as a separate archive that unpacks to face-locations/ "
        "(with train/, devel/, test/ inside): put that folder in the dataset folder, or pass face_dir=."
    )

    def scan(self, root: Path) -> list[VideoRecord]:
        records, strangers = [], []
        for folder, split in SPLITS.items():
            for path in sorted((root / folder / "real").glob("*.mov")):
                match = _REAL.match(path.stem)
                if match is None:
                    if not _ENROLL.match(path.stem):
                        strangers.append(path)
                    continue
                client, session, light, take = match.groups()
                meta = {"session": session, "light": light, "take": take}
                records.append(self._record(root, path, split, LIVE, "live", client, meta))
            for support in SUPPORTS:
                for path in sorted((root / folder / "attack" / support).glob("*.mov")):
                    match = _ATTACK.match(path.stem)
                    if match is None:
                        strangers.append(path)
                        continue
                    device, client, session, sample_device, sample, light = match.groups()
                    attack_type = "print" if device == "print" else f"replay_{device}_{sample}"
                    meta = {
                        "session": session,
                        "light": light,
                        "support": support,
                        "device": device,
                        "sample": f"{sample_device}_{sample}",
                    }
                    records.append(self._record(root, path, split, SPOOF, attack_type, client, meta))
        warn_unrecognised(self.title, strangers)
        return records

    @staticmethod
    def _record(
        root: Path, path: Path, split: str, label: int, attack_type: str, client: str, meta: dict
    ) -> VideoRecord:
        return VideoRecord(
            video_id=path.relative_to(root).with_suffix("").as_posix(),
            label=label,
            attack_type=attack_type,
            subject=client,
            split=split,
            path=str(path),
            meta=meta,
        )

    def default_annotation_path(self, record: VideoRecord) -> Path:
        return Path(str(self.root)).expanduser() / "face-locations" / f"{record.video_id}.face"
