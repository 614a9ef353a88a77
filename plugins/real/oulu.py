"""OULU-NPU: mobile face presentation attack database (Boulkenafet et al., IEEE FG 2017).

4,950 videos (1920 x 1080, .avi) of 55 subjects, recorded with 6 phones in 3 sessions (places and
lighting); 990 live, 3,960 attacks. Layout of the official distribution, as this plugin reads it::

    <root>/Train_files/1_1_01_1.avi   (+ 1_1_01_1.txt: per-frame eye positions)   subjects 01-20
    <root>/Dev_files/...                                                           subjects 21-35
    <root>/Test_files/...                                                          subjects 36-55
    <root>/Protocols/Protocol_1/{Train,Dev,Test}.txt, Protocol_2/...,
           Protocol_3/{Train,Dev,Test}_1..6.txt, Protocol_4/...    lines "+1,1_1_01_1" / "-1,1_1_01_2"

File names are ``Phone_Session_User_File``: phone 1-6, session 1-3, user 01-55, file (access type)
1 = live, 2 / 3 = print with printer 1 / 2, 4 / 5 = video replay on display 1 / 2 (the paper;
bob.db.oulunpu maps them to real, print1, print2, video_replay1, video_replay2 the same way).

Splits: option ``protocol`` = ``all`` (default; every video, split by its Train/Dev/Test folder, the
whole domain as leave-one-out DG protocols use it: 4,950 videos, dev included) or one official protocol
``1``, ``2``, ``3_1`` ... ``3_6``, ``4_1`` ... ``4_6`` (the videos and splits its list files name).
List labels: ``+1`` live, negative for attacks; the Test lists of some releases write ``-2`` for replay
(as public parsers note), so any negative label is read as "attack" and must agree with the file's
access type. Labels and attack kinds always come from the file name.

Faces: the ``.txt`` next to each video gives, per line, ``frame, x1, y1, x2, y2`` (the two eye
centres; all zero where none was found). Uncertain and handled: whether frames count from 0 or 1
(a file starting at 1 is read as 1-based) and which eye comes first (either order works). Crops are
rotated so that the eyes are level (option ``align``).
"""

from __future__ import annotations

import re
from pathlib import Path

from fasbench_plugins.real.base import VideoDataset, warn_unrecognised
from fasbench_plugins.real.faces import FaceGeometry, read_eye_file
from fasbench_plugins.real.loading import read_text_lines

from fasbench.errors import FasbenchError
from fasbench.interfaces import LIVE, SPOOF, VideoRecord
from fasbench.options import Option

FOLDERS = {"train": "Train_files", "dev": "Dev_files", "test": "Test_files"}
LIST_NAMES = {"train": "Train", "dev": "Dev", "test": "Test"}
PROTOCOLS = ("all", "1", "2", *(f"{p}_{fold}" for p in (3, 4) for fold in range(1, 7)))
_FILE = re.compile(r"^([1-6])_([1-3])_(\d{2})_([1-5])$")
# access type -> (attack_type, instrument)
ACCESS = {
    1: ("live", "none"),
    2: ("print_1", "printer 1"),
    3: ("print_2", "printer 2"),
    4: ("replay_1", "display 1"),
    5: ("replay_2", "display 2"),
}


def parse_protocol_line(line: str, where: str) -> tuple[str, int]:
    """``"+1,1_1_01_1"`` -> (``"1_1_01_1"``, LIVE); refuses malformed lines and labels that contradict the name."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 2 or not _FILE.match(fields[1]) or not re.fullmatch(r"[+-]?\d+", fields[0]):
        raise FasbenchError(f"{where}: expected 'label,Phone_Session_User_File' such as '+1,1_1_01_1', got {line!r}")
    label = LIVE if int(fields[0]) > 0 else SPOOF
    access = int(fields[1].rsplit("_", 1)[1])
    if (label == LIVE) != (access == 1):
        raise FasbenchError(f"{where}: label {fields[0]} contradicts access type {access} of {fields[1]}")
    return fields[1], label


class OuluNPU(VideoDataset):
    """OULU-NPU (O): 55 subjects, 6 phones, 3 sessions; print and replay attacks (Boulkenafet et al., 2017)."""

    name = "oulu"
    title = "OULU-NPU"
    EXPECTED = tuple(FOLDERS.values())
    EXTRA_OPTIONS = {
        "protocol": Option(str, "all", "all videos by folder split, or an official protocol", choices=PROTOCOLS)
    }
    ANNOTATION_HINT = "OULU-NPU ships a <video>.txt of eye positions next to each .avi; keep them beside the videos."

    def scan(self, root: Path) -> list[VideoRecord]:
        protocol = self.options["protocol"]
        if protocol == "all":
            return self._scan_folders(root)
        return self._scan_protocol(root, protocol)

    def _scan_folders(self, root: Path) -> list[VideoRecord]:
        records, strangers = [], []
        for split, folder in FOLDERS.items():
            for path in sorted((root / folder).glob("*.avi")):
                if _FILE.match(path.stem):
                    records.append(self._record(root, split, path.stem))
                else:
                    strangers.append(path)
        warn_unrecognised(self.title, strangers)
        return records

    def _scan_protocol(self, root: Path, protocol: str) -> list[VideoRecord]:
        number, _, fold = protocol.partition("_")
        records = []
        for split, list_name in LIST_NAMES.items():
            relative = f"Protocols/Protocol_{number}/{list_name}{'_' + fold if fold else ''}.txt"
            list_path = root / relative
            if not list_path.is_file():
                raise FasbenchError(f"{self.title} protocol {protocol}: list file {list_path} is missing")
            for line_number, line in enumerate(read_text_lines(list_path), 1):
                if line.strip():
                    stem, _ = parse_protocol_line(line.strip(), f"{list_path}:{line_number}")
                    records.append(self._record(root, split, stem, protocol))
        return records

    def _record(self, root: Path, split: str, stem: str, protocol: str = "all") -> VideoRecord:
        phone, session, subject, access = _FILE.match(stem).groups()
        attack_type, instrument = ACCESS[int(access)]
        folder = FOLDERS[split]
        return VideoRecord(
            video_id=f"{folder}/{stem}",
            label=LIVE if attack_type == "live" else SPOOF,
            attack_type=attack_type,
            subject=subject,
            split=split,
            path=str(root / folder / f"{stem}.avi"),
            meta={"phone": phone, "session": session, "instrument": instrument, "protocol": protocol},
        )

    def canonical_list(self) -> Path | None:
        """The full 4,950-video list for ``protocol=all``; an official protocol is a subset by design."""
        return super().canonical_list() if self.options["protocol"] == "all" else None

    def default_annotation_path(self, record: VideoRecord) -> Path:
        return Path(record.path).with_suffix(".txt")

    def read_annotations(self, path: Path) -> dict[int, FaceGeometry]:
        return read_eye_file(path)
