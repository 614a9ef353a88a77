"""CASIA-FASD: a face anti-spoofing database with diverse attacks (Zhang et al., ICB 2012).

600 videos (.avi) of 50 subjects: 150 live, 450 attacks. Layout of the official distribution::

    <root>/train_release/<1..20>/{1,2,3,4,5,6,7,8,HR_1,HR_2,HR_3,HR_4}.avi     20 subjects
    <root>/test_release/<1..30>/...                                            30 subjects

Per subject, the file name gives the kind and the capture quality (the paper's naming, as
bob.db.casia_fasd / bob.pad.face decode it): 1 / 2 / HR_1 live, 3 / 4 / HR_2 warped photo (print),
5 / 6 / HR_3 cut photo (print with the eyes cut out), 7 / 8 / HR_4 video replay; 1, 3, 5, 7 are
normal quality, 2, 4, 6, 8 low quality, HR_* high quality (bob's mapping; some papers swap the
names of normal and low, which changes no label).

Splits: the official train / test subjects (CASIA-FASD has no dev set). Subjects are numbered 01-20
(train) and 21-50 (test folder numbers + 20, as bob.db.casia_fasd counts them).

Faces: CASIA-FASD ships no face annotations, so preparation asks you to choose: ``face=dlib`` (the
optional offline detector), ``face=center``, or ``face_dir=DIR`` with per-video ``.face`` files
(``frame x y width height``, e.g. Idiap's face-locations files for CASIA-FASD).
"""

from __future__ import annotations

from pathlib import Path

from fasbench_plugins.real.base import VideoDataset, warn_unrecognised

from fasbench.interfaces import LIVE, SPOOF, VideoRecord

RELEASES = {"train": "train_release", "test": "test_release"}
SUBJECT_OFFSET = {"train": 0, "test": 20}
# file stem -> (attack_type, quality)
KINDS = {
    "1": ("live", "normal"),
    "2": ("live", "low"),
    "HR_1": ("live", "high"),
    "3": ("print_warped", "normal"),
    "4": ("print_warped", "low"),
    "HR_2": ("print_warped", "high"),
    "5": ("print_cut", "normal"),
    "6": ("print_cut", "low"),
    "HR_3": ("print_cut", "high"),
    "7": ("replay", "normal"),
    "8": ("replay", "low"),
    "HR_4": ("replay", "high"),
}


class CasiaFASD(VideoDataset):
    """CASIA-FASD (C): 50 subjects; warped, cut and video attacks at three qualities (Zhang et al., 2012)."""

    name = "casia"
    title = "CASIA-FASD"
    EXPECTED = tuple(RELEASES.values())
    ANNOTATION_HINT = "CASIA-FASD ships no face annotations."

    def scan(self, root: Path) -> list[VideoRecord]:
        records, strangers = [], []
        for split, release in RELEASES.items():
            for folder in sorted(p for p in (root / release).iterdir() if p.is_dir()):
                videos = sorted(folder.glob("*.avi"))
                if not folder.name.isdigit():
                    strangers.extend(videos)
                    continue
                subject = f"{int(folder.name) + SUBJECT_OFFSET[split]:02d}"
                for path in videos:
                    if path.stem not in KINDS:
                        strangers.append(path)
                        continue
                    attack_type, quality = KINDS[path.stem]
                    records.append(
                        VideoRecord(
                            video_id=f"{release}/{folder.name}/{path.stem}",
                            label=LIVE if attack_type == "live" else SPOOF,
                            attack_type=attack_type,
                            subject=subject,
                            split=split,
                            path=str(path),
                            meta={"quality": quality},
                        )
                    )
        warn_unrecognised(self.title, strangers)
        return records
