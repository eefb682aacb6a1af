"""Market-1501 in its official folder layout: find the splits, parse file names, check images.

    ROOT/bounding_box_train/   training identities      0002_c1s1_000451_03.jpg
    ROOT/bounding_box_test/    gallery (keeps junk -1 and distractors 0000)
    ROOT/query/                queries

`ROOT` may also be the folder that holds the official zip's top folder `Market-1501-v15.09.15/`.
A file name reads `PPPP_cCsS_FFFFFF_BB.jpg`: person id, camera, sequence, frame, box index.
Person id `-1` marks junk boxes and `0000` distractors; both only matter for evaluation.
Pillow and rich are imported by the functions that use them.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..decode import open_rgb
from ..errors import DataError
from ..progress import progress_bar

__all__ = [
    "Sample",
    "broken_links",
    "warn_broken_links",
    "Market1501",
    "SPLIT_FOLDERS",
    "IMAGE_SUFFIXES",
    "parse_name",
    "load_market1501",
    "verify_images",
]

SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
JUNK_PID = -1
DISTRACTOR_PID = 0

_NAME = re.compile(r"^(-1|\d+)_c([1-9])s\d+_\d+_\d+(?:\.(?:jpe?g|png))?$", re.IGNORECASE)
_SHOWN_SKIPPED = 5  # odd file names quoted per warning
_SHOWN_BROKEN = 10  # unreadable images quoted in the verification error


@dataclass(frozen=True)
class Sample:
    path: Path
    pid: int  # as in the file name: -1 junk, 0 distractor, >0 identity
    camid: int  # camera number from the file name (1-based, as written)


@dataclass
class Market1501:
    root: Path  # the folder that holds bounding_box_train/, bounding_box_test/ and query/
    train: list[Sample]  # identities only: junk and distractors are left out
    query: list[Sample]  # identities only
    gallery: list[Sample]  # everything, junk and distractors included
    train_pids: list[int]  # sorted distinct train pids; label of a pid = its index
    skipped: dict[str, list[Path]]  # split name -> image files whose names did not match the pattern
    excluded: dict[str, list[Sample]] = field(default_factory=dict)  # split -> junk/distractors left out
    descended_from: Path | None = None  # the folder given, when the data sat in its single subfolder
    _labels: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._labels = {pid: label for label, pid in enumerate(self.train_pids)}

    def label(self, pid: int) -> int:
        """The training label (0..num_train_ids-1) of a train person id."""
        try:
            return self._labels[pid]
        except KeyError:
            if not self.train_pids:
                raise DataError(
                    f"Cannot give person id {pid} a training label: no training split was loaded "
                    f"from {self.root}. Fix: load with splits including 'train'."
                ) from None
            raise DataError(
                f"Person id {pid} is not a training identity: expected one of the "
                f"{self.num_train_ids} pids in {SPLIT_FOLDERS['train']}/ "
                f"({self.train_pids[0]}..{self.train_pids[-1]}), found {pid}. Fix: only train pids "
                "have labels; query and gallery pids are compared with each other, not labelled."
            ) from None

    @property
    def num_train_ids(self) -> int:
        return len(self.train_pids)

    def summary(self) -> str:
        """One paragraph: images, ids and cameras per split, junk/distractors, skipped files."""
        where = f"Market-1501 at {self.root}"
        if self.descended_from is not None:
            where += f" (descended into it from the folder given, {self.descended_from})"
        parts = []
        for split in SPLIT_FOLDERS:
            samples: list[Sample] = getattr(self, split)
            if not samples and split not in self.skipped:
                continue  # split not loaded
            ids = {s.pid for s in samples if s.pid > 0}
            text = f"{split} {_plural(len(samples), 'image')} of {_plural(len(ids), 'id')}"
            text += f", {_cameras(s.camid for s in samples)}"
            junk = sum(s.pid == JUNK_PID for s in samples)
            distractors = sum(s.pid == DISTRACTOR_PID for s in samples)
            if junk or distractors:
                text += f", including {junk} junk and {distractors} distractor images"
            left_out = self.excluded.get(split, [])
            if left_out:
                junk = sum(s.pid == JUNK_PID for s in left_out)
                text += f", leaving out {junk} junk and {len(left_out) - junk} distractor images"
            parts.append(text)
        text = f"{where}: " + "; ".join(parts) + "."
        if self.train_pids:
            text += f" Train labels 0..{self.num_train_ids - 1}."
        skipped = {split: paths for split, paths in self.skipped.items() if paths}
        if skipped:
            total = sum(len(paths) for paths in skipped.values())
            per_split = ", ".join(f"{split}: {len(paths)}" for split, paths in skipped.items())
            examples = ", ".join([p.name for paths in skipped.values() for p in paths][:_SHOWN_SKIPPED])
            text += (
                f" Skipped {_plural(total, 'image file')} with names not like "
                f"PPPP_cCsS_FFFFFF_BB.jpg ({per_split}), e.g. {examples}."
            )
        else:
            text += " No files skipped."
        return text


def parse_name(name: str) -> tuple[int, int] | None:
    """`(pid, camid)` from a Market-1501 file name such as `0002_c1s1_000451_03.jpg`, else None.

    A directory part is ignored and the extension is optional. Junk reads pid -1 and
    distractors pid 0; the camera digit is 1-9, as written.
    """
    match = _NAME.match(Path(name).name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def load_market1501(
    root: str | os.PathLike[str],
    *,
    splits: Sequence[str] = ("train", "query", "gallery"),
    verify_images: bool = True,
    progress: bool = True,
) -> Market1501:
    """Read the splits named in `splits` from the official Market-1501 layout under `root`.

    Only the folders of the requested splits must exist. Files are taken in name order; odd
    names are skipped with a warning and listed in `skipped`. With `verify_images`, every image
    used is decoded once and all unreadable ones are reported together before returning.
    """
    wanted = _check_splits(splits)
    given = Path(root).expanduser().resolve()
    base = _find_root(given, wanted)
    descended_from = given if base != given else None

    loaded: dict[str, list[Sample]] = {split: [] for split in SPLIT_FOLDERS}
    skipped: dict[str, list[Path]] = {}
    excluded: dict[str, list[Sample]] = {}
    for split in wanted:
        folder = base / SPLIT_FOLDERS[split]
        samples, skipped[split] = _read_folder(folder)
        if skipped[split]:
            _warn_skipped(folder, skipped[split])
        if split != "gallery":
            excluded[split] = [s for s in samples if s.pid <= 0]
            samples = [s for s in samples if s.pid > 0]
            if split == "query" and excluded[split]:
                warnings.warn(
                    f"{folder} holds {_plural(len(excluded[split]), 'junk/distractor image')} "
                    "(pid -1 or 0000); the official query set has none. They are skipped.",
                    stacklevel=2,
                )
        if not samples:
            raise DataError(_empty_split_message(folder, split, skipped[split], excluded.get(split, [])))
        loaded[split] = samples

    if verify_images:
        _verify(
            [s.path for split in wanted for s in loaded[split]],
            progress=progress,
        )
    return Market1501(
        root=base,
        train=loaded["train"],
        query=loaded["query"],
        gallery=loaded["gallery"],
        train_pids=sorted({s.pid for s in loaded["train"]}),
        skipped=skipped,
        excluded=excluded,
        descended_from=descended_from,
    )


def verify_images(paths: Iterable[str | os.PathLike[str]], *, progress: bool = True) -> None:
    """Decode every image fully with Pillow; raise one DataError listing all that fail.

    Truncated files are caught because Pillow refuses them at load() unless
    `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is set, which this module never does.
    """
    _verify([Path(p) for p in paths], progress=progress)


# -- helpers ---------------------------------------------------------------------------------


def _check_splits(splits: Sequence[str]) -> list[str]:
    if isinstance(splits, str):
        splits = (splits,)
    unknown = [s for s in splits if s not in SPLIT_FOLDERS]
    if unknown or not splits:
        raise DataError(
            f"Unknown Market-1501 split(s): expected one or more of {', '.join(SPLIT_FOLDERS)}, "
            f"found {list(splits)!r}. Fix: pass splits=('train',) or a subset of all three."
        )
    return [s for s in SPLIT_FOLDERS if s in splits]  # canonical order, no duplicates


def _find_root(given: Path, wanted: list[str]) -> Path:
    if not given.exists():
        raise DataError(
            f"Market-1501 folder {given} does not exist. Expected a folder laid out as\n"
            f"{_layout(given, wanted, missing=set())}\n{_how_to_get()}"
        )
    if given.is_file():
        hint = "extract it first (unzip" if given.suffix.lower() == ".zip" else "point to its folder ("
        raise DataError(
            f"Market-1501 root {given} is a file, expected a folder. Fix: {hint} "
            f"and pass the folder holding {SPLIT_FOLDERS[wanted[0]]}/)."
        )
    if not any((given / folder).is_dir() for folder in SPLIT_FOLDERS.values()):
        holders = [
            child
            for child in sorted(given.iterdir())
            if child.is_dir()
            and not child.name.startswith((".", "__MACOSX"))
            and any((child / folder).is_dir() for folder in SPLIT_FOLDERS.values())
        ]
        if len(holders) == 1:  # e.g. ROOT/Market-1501-v15.09.15/ from the official zip
            return _find_root(holders[0], wanted)
        if len(holders) > 1:
            raise DataError(
                f"{given} holds several Market-1501 folders ({', '.join(h.name for h in holders)}); "
                "expected one. Fix: pass the one to use."
            )
    missing = {s for s in wanted if not (given / SPLIT_FOLDERS[s]).is_dir()}
    if missing:
        names = ", ".join(f"{SPLIT_FOLDERS[s]}/" for s in wanted if s in missing)
        found = sorted(p.name + ("/" if p.is_dir() else "") for p in given.iterdir())
        shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
        raise DataError(
            f"Market-1501 folder {given} is missing {names}. Expected\n"
            f"{_layout(given, wanted, missing)}\nFound: {shown or 'an empty folder'}.\n{_how_to_get()}"
        )
    return given


def _layout(root: Path, wanted: list[str], missing: set[str]) -> str:
    notes = {
        "train": "training images, e.g. 0002_c1s1_000451_03.jpg",
        "query": "query images",
        "gallery": "gallery images, junk (-1_...) and distractors (0000_...) included",
    }
    lines = [f"  {root}/"]
    for i, split in enumerate(wanted):
        branch = "└──" if i == len(wanted) - 1 else "├──"
        mark = "   <- missing" if split in missing else ""
        lines.append(f"  {branch} {SPLIT_FOLDERS[split] + '/':<20} {notes[split]}{mark}")
    return "\n".join(lines)


def _how_to_get() -> str:
    return (
        "Fix: pass the folder extracted from the official Market-1501-v15.09.15.zip (or its parent), "
        "or make a small synthetic set in that layout with `reid-export synth DIR`."
    )


def _read_folder(folder: Path) -> tuple[list[Sample], list[Path]]:
    samples, odd = [], []
    entries = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    warn_broken_links(folder, entries)
    files = sorted((p for p in entries if p.is_file()), key=lambda p: p.name)
    for path in files:
        parsed = parse_name(path.name)
        if parsed is None:
            odd.append(path)
        else:
            samples.append(Sample(path=path, pid=parsed[0], camid=parsed[1]))
    return samples, odd


def broken_links(entries: Iterable[Path]) -> list[tuple[Path, str]]:
    """Symbolic links among `entries` that lead to no file: (link, "dangling" | "a symlink loop")."""
    broken = []
    for path in entries:
        if not path.is_symlink():
            continue
        try:
            path.stat()
        except FileNotFoundError:
            broken.append((path, "dangling"))
        except OSError as e:  # ELOOP: the link points (eventually) at itself
            broken.append((path, "a symlink loop" if e.errno == 40 else e.strerror or "unreadable"))
    return broken


def warn_broken_links(folder: Path, entries: Iterable[Path]) -> None:
    """Say (count + first examples) which image links in `folder` are skipped because they lead nowhere."""
    broken = sorted(broken_links(entries), key=lambda item: item[0].name)
    if broken:
        examples = ", ".join(f"{p.name} ({why} -> {os.readlink(p)})" for p, why in broken[:_SHOWN_SKIPPED])
        more = f" and {len(broken) - _SHOWN_SKIPPED} more" if len(broken) > _SHOWN_SKIPPED else ""
        warnings.warn(f"Skipped {_plural(len(broken), 'broken symbolic link')} in {folder}: {examples}{more}. "
                      "Fix: point them at existing images or remove them.", stacklevel=4)


def _warn_skipped(folder: Path, odd: list[Path]) -> None:
    examples = ", ".join(p.name for p in odd[:_SHOWN_SKIPPED])
    more = f" and {len(odd) - _SHOWN_SKIPPED} more" if len(odd) > _SHOWN_SKIPPED else ""
    warnings.warn(
        f"Skipped {_plural(len(odd), 'image file')} in {folder} with names not like "
        f"PPPP_cCsS_FFFFFF_BB.jpg (e.g. 0002_c1s1_000451_03.jpg): {examples}{more}. "
        "Fix: rename or remove them if they should be used.",
        stacklevel=3,
    )


def _empty_split_message(folder: Path, split: str, odd: list[Path], left_out: list[Sample]) -> str:
    if odd or left_out:
        found = f"{_plural(len(odd), 'file')} with unexpected names"
        found += f" and {_plural(len(left_out), 'junk/distractor image')}" if left_out else ""
    else:
        found = "no .jpg/.jpeg/.png files"
    return (
        f"The {split} split in {folder} is empty: expected images named like "
        f"0002_c1s1_000451_03.jpg with person ids above 0, found {found}. "
        "Fix: re-extract the data set, or make a synthetic one with `reid-export synth DIR`."
    )


def _verify(paths: list[Path], *, progress: bool) -> None:
    if not paths:
        return
    broken: list[tuple[Path, str]] = []
    workers = min(8, os.cpu_count() or 1)
    with progress_bar("Checking images", len(paths), enabled=progress) as advance:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow decodes without the GIL
            for path, error in zip(paths, pool.map(_decode_error, paths, chunksize=64)):
                if error is not None:
                    broken.append((path, error))
                advance()
    if broken:
        lines = "\n".join(f"  {path}: {error}" for path, error in broken[:_SHOWN_BROKEN])
        more = f"\n  ... and {len(broken) - _SHOWN_BROKEN} more" if len(broken) > _SHOWN_BROKEN else ""
        raise DataError(
            f"{len(broken)} of {_plural(len(paths), 'image')} cannot be decoded (corrupt or "
            f"truncated); expected every image to open with Pillow:\n{lines}{more}\n"
            "Fix: delete these files, or re-extract the data set from its archive, then run again."
        )


def _decode_error(path: Path) -> str | None:
    try:
        open_rgb(path)  # the one decode: full decode, pixel format and size checks
    except DataError as error:
        return str(error).removeprefix(f"{path}: ")
    except Exception as error:  # any failure means the file is unusable; report, don't crash
        return f"{type(error).__name__}: {error}"
    return None


def _cameras(camids: Iterable[int]) -> str:
    cams = sorted(set(camids))
    if not cams:
        return "no cameras"
    if cams == list(range(cams[0], cams[-1] + 1)) and len(cams) > 2:
        return f"cameras {cams[0]}-{cams[-1]}"
    return ("camera " if len(cams) == 1 else "cameras ") + ",".join(map(str, cams))


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")
