"""MOTChallenge sequences: found, read and written (MOT17, MOT20, DanceTrack and `synthetic.video`'s).

One sequence is a folder::

    SEQ/seqinfo.ini     [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
                        (`synthetic.video` adds scene and camera: views of one scene share person ids)
    SEQ/img1/000001.jpg the frames, numbered from 1
    SEQ/gt/gt.txt       frame, id, x, y, w, h, flag (1 counts, 0 ignored), class (1 pedestrian), visibility
    SEQ/det/det.txt     frame, -1, x, y, w, h, score, -1, -1, -1  (public detections; DanceTrack has none)

Boxes are top-left x, y, width and height in pixels; frames and ids start at 1. Nothing is downloaded:
the folders are the user's, or made by `reid-export synth-video`.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decode import open_rgb
from ..errors import DataError
from ..files import write_text

__all__ = ["MotSequence", "find_sequences", "read_sequence", "write_seqinfo", "write_rows", "read_rows",
           "GT_COLUMNS", "DET_COLUMNS", "PEDESTRIAN"]

GT_COLUMNS = 9  # frame, id, x, y, w, h, flag, class, visibility
DET_COLUMNS = 10  # frame, id (-1), x, y, w, h, score, x, y, z (-1): also the layout of tracker results
PEDESTRIAN = 1  # the MOTChallenge class of a walking person
SEQINFO = "seqinfo.ini"


@dataclass(frozen=True)
class MotSequence:
    name: str  # seqinfo name, e.g. MOT17-02-FRCNN
    root: Path  # the sequence folder
    length: int  # frames, numbered 1..length
    width: int  # frame width in pixels
    height: int  # frame height in pixels
    frame_rate: float  # frames per second
    image_dir: str = "img1"  # folder of the frames, inside root
    image_ext: str = ".jpg"
    scene: str | None = None  # multi-camera group (seqinfo `scene`); None for single-camera data
    camera: int | None = None  # this view's camera number within its scene

    def image_path(self, frame: int) -> Path:
        return self.root / self.image_dir / f"{frame:06d}{self.image_ext}"

    def read_frame(self, frame: int) -> np.ndarray:
        """Frame `frame` (from 1) as (height, width, 3) RGB uint8."""
        return np.asarray(open_rgb(self.image_path(frame)), dtype=np.uint8)

    def ground_truth(self) -> np.ndarray:
        """gt/gt.txt as (N, 9) float64 rows; a DataError naming the file when the sequence has none."""
        path = self.root / "gt" / "gt.txt"
        if not path.is_file():
            raise DataError(f"{path}: no ground truth; track-bench scores against gt/gt.txt, so use sequences with "
                            "ground truth (a train split of MOT17/MOT20/DanceTrack, or `reid-export synth-video`)")
        return read_rows(path, GT_COLUMNS)

    def detections(self, det_file: str | Path | None = None) -> np.ndarray:
        """Detections as (N, 10) float64 rows: det/det.txt, or `det_file` (relative to the sequence folder, or a
        path where `{seq}` stands for the sequence name)."""
        path = self.det_path(det_file)
        if not path.is_file():
            raise DataError(f"{path}: no detections for sequence {self.name}; give a det.txt with --det (a path, "
                            "relative to each sequence folder or with {seq} for the sequence name)")
        return read_rows(path, DET_COLUMNS)

    def det_path(self, det_file: str | Path | None = None) -> Path:
        if det_file is None:
            return self.root / "det" / "det.txt"
        text = str(det_file)
        path = Path(text.replace("{seq}", self.name))
        return path if path.is_absolute() or "{seq}" in text else self.root / path


def find_sequences(root: str | Path, pattern: str = "*") -> list[MotSequence]:
    """Every sequence under `root`, sorted by name: `root` itself when it holds seqinfo.ini, else its
    sub-folders that do, one or two levels down (MOT17/train/MOT17-02-FRCNN). `pattern` filters names
    (shell-style, e.g. `*FRCNN`)."""
    import fnmatch

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data {root}: no such folder; give a MOTChallenge folder (sequences with seqinfo.ini)")
    if (root / SEQINFO).is_file():
        found = [root]
    else:
        found = sorted(p.parent for p in root.glob(f"*/{SEQINFO}")) or sorted(p.parent for p in root.glob(f"*/*/{SEQINFO}"))
    sequences = [s for s in map(read_sequence, found) if fnmatch.fnmatch(s.name, pattern)]
    if not sequences:
        raise DataError(f"--data {root}: no sequence{'' if pattern == '*' else f' named {pattern}'} found (a sequence "
                        f"is a folder with {SEQINFO}, img1/ and gt/gt.txt); make some with `reid-export synth-video`")
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise DataError(f"--data {root}: two sequences share a name ({sorted(n for n in names if names.count(n) > 1)[0]}); "
                        "give one split folder, or filter with --sequences")
    return sorted(sequences, key=lambda s: s.name)


def read_sequence(folder: str | Path) -> MotSequence:
    folder = Path(folder)
    parser = configparser.ConfigParser()
    try:
        parser.read_string((folder / SEQINFO).read_text())
        info = parser["Sequence"]
        return MotSequence(
            name=info.get("name", folder.name), root=folder, length=int(info["seqLength"]),
            width=int(info["imWidth"]), height=int(info["imHeight"]), frame_rate=float(info.get("frameRate", 30)),
            image_dir=info.get("imDir", "img1"), image_ext=info.get("imExt", ".jpg"),
            scene=info.get("scene"), camera=int(info["camera"]) if "camera" in info else None,
        )
    except (OSError, KeyError, ValueError, configparser.Error) as e:
        raise DataError(f"{folder / SEQINFO}: not a MOTChallenge seqinfo.ini ({type(e).__name__}: {e}); it needs a "
                        "[Sequence] section with seqLength, imWidth and imHeight") from None


def write_seqinfo(folder: str | Path, sequence: MotSequence) -> Path:
    lines = ["[Sequence]", f"name={sequence.name}", f"imDir={sequence.image_dir}", f"frameRate={sequence.frame_rate:g}",
             f"seqLength={sequence.length}", f"imWidth={sequence.width}", f"imHeight={sequence.height}",
             f"imExt={sequence.image_ext}"]
    if sequence.scene is not None:
        lines += [f"scene={sequence.scene}", f"camera={sequence.camera}"]
    return write_text(Path(folder) / SEQINFO, "\n".join(lines) + "\n")


def write_rows(path: str | Path, rows: np.ndarray) -> Path:
    """MOTChallenge text rows: integers for frame, id, class and the -1 columns, two decimals for boxes and scores."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, np.shape(rows)[-1] if np.ndim(rows) == 2 else 0)
    lines = [",".join(_number(v, col) for col, v in enumerate(row)) for row in rows]
    return write_text(path, "".join(line + "\n" for line in lines))


def read_rows(path: str | Path, columns: int) -> np.ndarray:
    """A MOTChallenge text file as (N, columns) float64, sorted by frame; short rows (MOT16's 7-column det.txt)
    are padded with -1, extra columns dropped."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.replace(" ", "").split(",") if v != ""]
        except ValueError:
            raise DataError(f"{path}:{n}: not a MOTChallenge row ({line.strip()[:60]!r}); expected comma-separated "
                            "numbers: frame, id, x, y, w, h, ...") from None
        if len(values) < 6:
            raise DataError(f"{path}:{n}: {len(values)} values, a MOTChallenge row has at least 6 "
                            "(frame, id, x, y, w, h)")
        rows.append((values + [-1.0] * columns)[:columns])
    out = np.asarray(rows, dtype=np.float64).reshape(-1, columns)
    return out[np.argsort(out[:, 0], kind="stable")]


def _number(value: float, column: int) -> str:
    if column in (0, 1) or value == int(value):
        return str(int(value))
    return f"{value:.2f}"
