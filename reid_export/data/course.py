"""The course layout: a re-packaged Market-1501 with anonymised test images and an attribute CSV.

    ROOT/train/                 training images      0474_c5_013563167.jpg  (pid, camera, 9 digits)
    ROOT/test/                  gallery, unlabelled  000123.jpg
    ROOT/queries/               queries, unlabelled  000045.jpg
    ROOT/annotations_train.csv  `id` (the 4-digit pid) + the 27 attributes, one row per id

The CSV uses the Market codes (`reid_export.data.attributes`); its columns are read by header
name, in any order.

Its person ids are NOT the official Market-1501 ids: the course renumbered the identities, so
pid 0474 here and pid 0474 in the official `market_attribute.mat` are different people. The two
are kept apart on purpose: `load_course` reads the course CSV only, `load_market_attributes`
reads the official file only, and no function joins them. Passing the official file to
`load_course` is an error.

The writers produce the course's submission files: `reid_test.txt` (ranked gallery per query)
and `classification_test.csv` (27 codes per test image).
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import atomic_path, write_text
from .attributes import ATTRIBUTE_CODES, ATTRIBUTE_FILE, ATTRIBUTE_NAMES, check_codes
from .market1501 import IMAGE_SUFFIXES, Sample, warn_broken_links
from .market1501 import verify_images as _verify_images

__all__ = [
    "CourseData",
    "COURSE_FOLDERS",
    "ANNOTATIONS_FILE",
    "parse_course_name",
    "load_course",
    "course_validation_split",
    "write_reid_ranking",
    "write_attribute_predictions",
]

COURSE_FOLDERS = {"train": "train", "test": "test", "queries": "queries"}
ANNOTATIONS_FILE = "annotations_train.csv"

_NAME = re.compile(r"^(\d{4})_c([1-9])_(\d{9})(?:\.(?:jpe?g|png))?$", re.IGNORECASE)
_SHOWN = 5  # examples quoted per warning or error


@dataclass
class CourseData:
    root: Path  # the folder holding train/, test/, queries/ and annotations_train.csv
    train: list[Sample]  # labelled training images, in name order
    test: list[Path]  # anonymised gallery images, in name order
    queries: list[Path]  # anonymised query images, in name order
    attributes: dict[int, dict[str, int]]  # course pid -> 27 codes, from the CSV (course ids only)
    train_pids: list[int] = field(default_factory=list)  # sorted distinct pids of `train`
    unlabelled_pids: list[int] = field(default_factory=list)  # train pids without a CSV row
    skipped: list[Path] = field(default_factory=list)  # train files whose names do not parse

    def summary(self) -> str:
        """One line: images and ids per folder, CSV rows, unlabelled ids, skipped files."""
        return (
            f"Course data at {self.root}: train {len(self.train)} images of {len(self.train_pids)} ids, "
            f"test {len(self.test)} images, queries {len(self.queries)} images; "
            f"{len(self.attributes)} attribute rows, {len(self.unlabelled_pids)} train ids without one; "
            f"{len(self.skipped)} train files skipped."
        )


def parse_course_name(name: str) -> tuple[int, int] | None:
    """`(pid, camid)` from a course train name such as `0474_c5_013563167.jpg`, else None.

    A directory part is ignored and the extension is optional.
    """
    match = _NAME.match(Path(name).name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def load_course(
    root: str | os.PathLike[str],
    *,
    annotations: str | os.PathLike[str] | None = None,
    verify_images: bool = True,
    progress: bool = True,
) -> CourseData:
    """Read the course layout under `root`; `annotations` overrides `ROOT/annotations_train.csv`.

    Train images whose pid has no CSV row are kept (they still train identity) and reported in
    a warning and in `unlabelled_pids`. With `verify_images`, every image is decoded once.
    """
    base = Path(root).expanduser().resolve()
    csv_path = Path(annotations).expanduser() if annotations is not None else base / ANNOTATIONS_FILE
    if csv_path.suffix.lower() == ".mat":
        raise DataError(
            f"{csv_path} is a .mat file, but the course data needs its own {ANNOTATIONS_FILE}: the course "
            f"renumbered the identities, so the ids in the official {ATTRIBUTE_FILE} do not match the "
            "course ids (pid 0474 there is another person than 0474 here). Fix: pass the course CSV, "
            "or load the official file for the official layout with load_market_attributes."
        )
    _check_layout(base, csv_path, given_csv=annotations is not None)
    if (base / ATTRIBUTE_FILE).exists():
        warnings.warn(
            f"Ignoring {base / ATTRIBUTE_FILE}: its ids are the official Market-1501 ids, which do not "
            f"match the course ids; attributes come from {csv_path.name} only.",
            stacklevel=2,
        )

    train, skipped = [], []
    for path in _images(base / COURSE_FOLDERS["train"]):
        parsed = parse_course_name(path.name)
        if parsed is None:
            skipped.append(path)
        else:
            train.append(Sample(path=path, pid=parsed[0], camid=parsed[1]))
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} file(s) in {base / 'train'} with names not like 0474_c5_013563167.jpg: "
            f"{_examples([p.name for p in skipped])}. Fix: rename or remove them if they should be used.",
            stacklevel=2,
        )
    folders = {key: _images(base / COURSE_FOLDERS[key]) for key in ("test", "queries")}
    for key, found in (("train", train), ("test", folders["test"]), ("queries", folders["queries"])):
        if not found:
            raise DataError(
                f"{base / COURSE_FOLDERS[key]} holds no usable images: expected .jpg/.jpeg/.png files"
                + (" named like 0474_c5_013563167.jpg" if key == "train" else "")
                + f", found {len(skipped) if key == 'train' else 0} other. Fix: copy the course images there."
            )

    attributes = _read_annotations(csv_path)
    train_pids = sorted({s.pid for s in train})
    unlabelled = [pid for pid in train_pids if pid not in attributes]
    if unlabelled:
        images = sum(s.pid in set(unlabelled) for s in train)
        warnings.warn(
            f"{len(unlabelled)} of {len(train_pids)} train ids ({images} images) have no row in {csv_path}: "
            f"{_examples([f'{p:04d}' for p in unlabelled])}. They train identity but not attributes.",
            stacklevel=2,
        )
    if verify_images:
        _verify_images([s.path for s in train] + folders["test"] + folders["queries"], progress=progress)
    return CourseData(
        root=base,
        train=train,
        test=folders["test"],
        queries=folders["queries"],
        attributes=attributes,
        train_pids=train_pids,
        unlabelled_pids=unlabelled,
        skipped=skipped,
    )


def course_validation_split(
    data: CourseData, num_ids: int = 100, seed: int = 0
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """`(train, query, gallery)`: hold out the last `num_ids` ids (by pid) for validation.

    Each held-out id gives one query, picked at random (seeded) among its images that have
    another image of the id from a different camera (any image when none has), so the query has a
    match under the Market-1501 protocol; the id's other images form the gallery. The remaining
    ids are the training set. Every list keeps the order of `data.train`.
    """
    if isinstance(num_ids, bool) or not isinstance(num_ids, (int, np.integer)) or num_ids < 1:
        raise DataError(f"num_ids must be a positive integer, found {num_ids!r}.")
    pids = data.train_pids
    if len(pids) < num_ids + 2:
        raise DataError(
            f"A validation split holding out {num_ids} ids needs at least {num_ids + 2} train ids "
            f"(at least 2 left for training), found {len(pids)}. Fix: pass a smaller num_ids."
        )
    held = set(pids[-num_ids:])
    by_pid: dict[int, list[Sample]] = {pid: [] for pid in sorted(held)}
    train = []
    for sample in data.train:
        (by_pid[sample.pid] if sample.pid in held else train).append(sample)
    rng = np.random.default_rng(seed)
    query, gallery = [], []
    lonely = []
    for pid, samples in by_pid.items():
        crossing = [s for s in samples if any(o.camid != s.camid for o in samples)]
        candidates = crossing or samples
        pick = candidates[int(rng.integers(len(candidates)))]
        if len(samples) == 1:
            lonely.append(pid)
        query.append(pick)
        gallery.extend(s for s in samples if s is not pick)
    if lonely:
        warnings.warn(
            f"{len(lonely)} held-out id(s) have a single image, so their query has no gallery match and "
            f"evaluation skips it: {_examples([f'{p:04d}' for p in lonely])}.",
            stacklevel=2,
        )
    order = {s.path: i for i, s in enumerate(data.train)}
    query.sort(key=lambda s: order[s.path])
    return train, query, gallery


def write_reid_ranking(
    path: str | os.PathLike[str],
    query_names: Sequence[str | os.PathLike[str]],
    ranked_gallery_names: Sequence[Sequence[str | os.PathLike[str]]],
    top_k: int = 100,
) -> Path:
    """Write `reid_test.txt`: one line `query.jpg: g1.jpg, g2.jpg, ...` per query, best match first.

    Only file names are written (folders dropped); each line lists the first `top_k` names of
    its ranking, or all of them when the gallery is smaller.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise DataError(f"top_k must be a positive integer, found {top_k!r}.")
    if len(query_names) != len(ranked_gallery_names):
        raise DataError(
            f"write_reid_ranking needs one ranking per query: found {len(query_names)} query names and "
            f"{len(ranked_gallery_names)} rankings."
        )
    lines = []
    for query, ranking in zip(query_names, ranked_gallery_names):
        names = [Path(name).name for name in ranking[:top_k]]
        if not names:
            raise DataError(f"The ranking of query {Path(query).name} is empty; expected at least one gallery name.")
        if len(set(names)) != len(names):
            raise DataError(f"The ranking of query {Path(query).name} names a gallery image twice; expected each once.")
        lines.append(f"{Path(query).name}: {', '.join(names)}\n")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, "".join(lines))  # atomic: a write error is one message naming the file
    return out


def write_attribute_predictions(
    path: str | os.PathLike[str],
    names: Sequence[str | os.PathLike[str]],
    codes: Sequence[Mapping[str, int]],
) -> Path:
    """Write `classification_test.csv`: header `id` + the 27 attributes, one row per test image.

    `id` is the image's file name; values use the Market codes (1/2, age 1-4).
    """
    if len(names) != len(codes):
        raise DataError(
            f"write_attribute_predictions needs one code dict per image: found {len(names)} names and "
            f"{len(codes)} code dicts."
        )
    for name, sample in zip(names, codes):
        check_codes(sample, f"prediction for {Path(name).name}")
    out = Path(path)
    with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("id",) + ATTRIBUTE_NAMES)
        for name, sample in zip(names, codes):
            writer.writerow([Path(name).name] + [int(sample[a]) for a in ATTRIBUTE_NAMES])
    return out


# -- helpers ---------------------------------------------------------------------------------


def _check_layout(base: Path, csv_path: Path, *, given_csv: bool) -> None:
    if not base.is_dir():
        found = "a file" if base.exists() else "nothing"
        raise DataError(f"Course data folder {base} not found (found {found}); expected\n{_tree(base, set())}")
    missing = {folder for folder in COURSE_FOLDERS.values() if not (base / folder).is_dir()}
    if not given_csv and not csv_path.is_file():
        missing.add(ANNOTATIONS_FILE)
    if missing:
        found = sorted(p.name + ("/" if p.is_dir() else "") for p in base.iterdir())
        official = (base / "bounding_box_train").is_dir()
        hint = (" (this is the official Market-1501 layout, not the course's: `reid-export predict` writes the "
                "course's submission files; for a Market-1501 folder use `reid-export bench --data DIR --model "
                "MODEL` for accuracy, or `reid-export visualize` for ranked lists)") if official else ""
        raise DataError(
            f"Course data folder {base} is missing {', '.join(sorted(missing))}{hint}. Expected\n"
            f"{_tree(base, missing)}\nFound: {', '.join(found) or 'an empty folder'}. "
            "Fix: pass the folder extracted from the course archive."
        )
    if given_csv and not csv_path.is_file():
        raise DataError(f"Annotations file {csv_path} not found. Fix: pass the course's {ANNOTATIONS_FILE}.")


def _tree(base: Path, missing: set[str]) -> str:
    rows = [
        ("train/", "training images, e.g. 0474_c5_013563167.jpg"),
        ("test/", "gallery images, e.g. 000123.jpg"),
        ("queries/", "query images, e.g. 000045.jpg"),
        (ANNOTATIONS_FILE, "id + the 27 attribute columns"),
    ]
    lines = [f"  {base}/"]
    for i, (name, note) in enumerate(rows):
        branch = "└──" if i == len(rows) - 1 else "├──"
        mark = "   <- missing" if name.rstrip("/") in missing else ""
        lines.append(f"  {branch} {name:<22} {note}{mark}")
    return "\n".join(lines)


def _images(folder: Path) -> list[Path]:
    """Image files in name order; hidden files (e.g. macOS `._x.jpg`) are not images. Links that lead
    nowhere are reported (count and examples) and skipped."""
    entries = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    warn_broken_links(folder, entries)
    return sorted((p for p in entries if p.is_file()), key=lambda p: p.name)


def _read_annotations(path: Path) -> dict[int, dict[str, int]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataError(
            f"{path} is empty; expected a header `id,{','.join(ATTRIBUTE_NAMES[:3])},...` and one row per id."
        )
    header = [h.strip() for h in rows[0]]
    wanted = ("id",) + ATTRIBUTE_NAMES
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)}; expected `id` and the 27 attributes "
            f"({', '.join(ATTRIBUTE_NAMES)}) in any order, found {header}. Fix: use the course's {ANNOTATIONS_FILE}."
        )
    doubled = sorted({h for h in header if header.count(h) > 1 and h in wanted})
    if doubled:
        raise DataError(f"{path} has column(s) {', '.join(doubled)} more than once; expected each once.")
    column = {name: header.index(name) for name in wanted}
    labels: dict[int, dict[str, int]] = {}
    lines_of: dict[int, list[int]] = {}
    for number, row in enumerate(rows[1:], start=1):
        line = number + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(
                f"{path}, row {number} (line {line}) has {len(row)} fields; expected {len(header)} as in the header."
            )
        pid = _cell_int(path, number, "id", row[column["id"]])
        if pid < 0:
            raise DataError(
                f"{path}, row {number} (line {line}), column 'id': expected a person id such as 0474, "
                f"found {row[column['id']]!r}."
            )
        codes = {}
        for name in ATTRIBUTE_NAMES:
            value = _cell_int(path, number, name, row[column[name]])
            if value not in ATTRIBUTE_CODES[name]:
                raise DataError(
                    f"{path}, row {number} (line {line}), column {name!r}: value {value} is out of range; expected "
                    f"one of {', '.join(map(str, ATTRIBUTE_CODES[name]))}."
                )
            codes[name] = value
        lines_of.setdefault(pid, []).append(line)
        labels[pid] = codes
    repeated = {pid: lines for pid, lines in lines_of.items() if len(lines) > 1}
    if repeated:
        shown = "; ".join(
            f"{pid:04d} on lines {', '.join(map(str, lines))}" for pid, lines in list(repeated.items())[:_SHOWN]
        )
        raise DataError(
            f"{path} has {len(repeated)} duplicate id(s): {shown}. Expected one row per id. Fix: remove the duplicates."
        )
    return labels


def _cell_int(path: Path, number: int, name: str, cell: str) -> int:
    text = cell.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value.is_integer():  # "2.0", as written by pandas for a column that held a NaN once
        return int(value)
    raise DataError(f"{path}, row {number} (line {number + 1}), column {name!r}: expected an integer, found {cell!r}.")


def _examples(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more
