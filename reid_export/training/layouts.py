"""What a `--data` folder gives training: the images to train on, the split to evaluate on, attribute labels.

    data = load_training_data("data/market", attributes=True)
    data.layout, data.train, data.labels, data.query, data.gallery, data.attribute_arrays()

Two layouts are recognised by their folder names:

* Market-1501, the official layout (`ROOT/bounding_box_train/`, `query/`, `bounding_box_test/`):
  trains on bounding_box_train/ and evaluates query/ against bounding_box_test/ when both exist.
  Attribute labels come from `ROOT/market_attribute.mat`: its `train` ids label the training
  images, its `test` ids the query and gallery images. With `hold_out` (embedding = "auto") the
  last `val_ids` training ids are held out of training by `market_validation_split`, the
  validation split that picks the embedding; query/ and bounding_box_test/ never take part in it.
* The course layout (`ROOT/train/`, `test/`, `queries/`, `annotations_train.csv`): test/ and
  queries/ are unlabelled, so the last `val_ids` train ids (by pid) are held out with
  `course_validation_split` (seed 0, the same split whatever the training seed): one query per
  held-out id, its other images the gallery. Training uses the other ids. Attribute labels
  come from annotations_train.csv, for both parts. The course renumbered the ids, so a
  market_attribute.mat next to it is never read. The held-out ids are also the validation split.

Labels are read only when asked for (`attributes` true or "auto").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.attributes import ATTRIBUTE_FILE, NUM_TARGETS, encode_targets, load_market_attributes, test_split_labels
from ..data.course import ANNOTATIONS_FILE, COURSE_FOLDERS, course_validation_split, load_course
from ..data.market1501 import SPLIT_FOLDERS, Sample, load_market1501, verify_images
from ..errors import DataError

__all__ = ["LAYOUTS", "TrainingData", "ValidationSplit", "detect_layout", "load_training_data",
           "market_validation_split", "resolve_attributes"]

LAYOUTS = ("market", "course")
VALIDATION_SEED = 0  # seed of the course validation split's query choice


@dataclass(frozen=True)
class ValidationSplit:
    """Held-out training identities: queries and gallery drawn from the training folder only."""
    query: list[Sample]
    gallery: list[Sample]
    pids: list[int]  # the held-out ids, sorted

    def record(self, source: str) -> dict:
        """What a checkpoint or artefact stores about the split (no paths)."""
        return {"source": source, "ids": list(self.pids), "num_query": len(self.query),
                "num_gallery": len(self.gallery)}


@dataclass
class TrainingData:
    layout: str  # "market" or "course"
    root: Path  # the data folder as found (for Market-1501, the folder holding bounding_box_train/)
    train: list[Sample]  # images to train on
    train_pids: list[int]  # sorted distinct pids of `train`; the label of a pid is its index
    query: list[Sample] | None  # evaluation queries; None when the data has no evaluation split
    gallery: list[Sample] | None  # evaluation gallery (Market: junk and distractors included)
    attribute_file: Path  # where attribute labels are read from in this layout
    attributes: dict[int, dict[str, int]] | None  # train pid -> 27 codes; None when not read or not found
    eval_attributes: dict[int, dict[str, int]] | None  # query/gallery pid -> 27 codes; None when none
    validation: ValidationSplit | None = None  # held-out training ids (course: the same as query/gallery)

    @property
    def num_train_ids(self) -> int:
        return len(self.train_pids)

    @property
    def labels(self) -> list[int]:
        """Training label (0..num_train_ids-1) of every image of `train`."""
        index = {pid: label for label, pid in enumerate(self.train_pids)}
        return [index[s.pid] for s in self.train]

    @property
    def labelled_images(self) -> int:
        """Training images whose person has attribute labels."""
        return sum(s.pid in self.attributes for s in self.train) if self.attributes else 0

    def attribute_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(targets (N, 27) int64 in the `encode_targets` layout, mask (N,) bool) for `train`; images
        without labels get a zero row and mask False."""
        labels = self.attributes or {}
        encoded = {pid: encode_targets(codes) for pid, codes in labels.items()}
        targets = np.zeros((len(self.train), NUM_TARGETS), dtype=np.int64)
        mask = np.zeros(len(self.train), dtype=bool)
        for i, sample in enumerate(self.train):
            if sample.pid in encoded:
                targets[i], mask[i] = encoded[sample.pid], True
        return targets, mask


def detect_layout(root: str | Path) -> str:
    """"market" or "course", from the folder names under `root`; a DataError naming both layouts otherwise."""
    base = Path(root).expanduser()
    if not base.is_dir():
        found = "a file" if base.exists() else "nothing there"
        raise DataError(f"--data {base}: expected a data folder, found {found}.\n{_both_layouts()}")
    names = {p.name for p in base.iterdir()}
    course = [name for name in (*COURSE_FOLDERS.values(), ANNOTATIONS_FILE) if name in names]
    if _has_market_folders(base) or any(_has_market_folders(child) for child in _subfolders(base)):
        return "market"
    if len(course) >= 2:
        return "course"
    shown = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in base.iterdir())[:10])
    raise DataError(f"--data {base} looks like neither training layout; found {shown or 'an empty folder'}.\n"
                    f"{_both_layouts()}")


def load_training_data(root: str | Path, *, attributes: bool | str = False, val_ids: int = 100,
                       hold_out: bool = False, progress: bool = True) -> TrainingData:
    """Read the folder in whichever layout it is; attribute labels only when `attributes` is not False.
    `hold_out`: in the Market layout, keep the last `val_ids` training ids out of training as `validation`."""
    layout = detect_layout(root)
    if layout == "course":
        data = _load_course(root, val_ids, progress)
    else:
        data = _load_market(root, progress)
        if hold_out:
            _hold_out(data, val_ids)
    if data.num_train_ids < 2:
        raise DataError(f"training needs at least 2 identities in {data.root}, found {data.num_train_ids}"
                        f"{' after holding out val_ids = ' + str(val_ids) if layout == 'course' else ''}; "
                        "add images of more people")
    if attributes is False:
        data.attributes = data.eval_attributes = None
    elif layout == "market":
        _read_market_attributes(data)
    return data


def market_validation_split(samples: list[Sample], num_ids: int,
                            ids: list[int] | None = None) -> tuple[list[Sample], ValidationSplit]:
    """(training samples left, validation split): the last `num_ids` ids (by pid), or exactly `ids` when
    given (a checkpoint's record), are held out; each gives one query per camera (its first image there, in
    file order), its other images form the gallery. The Market-1501 protocol then ranks each query against
    the id's images from other cameras."""
    pids = sorted({s.pid for s in samples})
    if ids is not None:
        missing = sorted(set(ids) - set(pids))
        if missing or not ids:
            raise DataError(f"the validation ids {missing[:5] or ids} are not training ids of this folder; pass the "
                            "data folder the model was trained on, or let the last ids be held out")
        num_ids = len(set(ids))
    if len(pids) < num_ids + 2:
        raise DataError(f"holding out val_ids = {num_ids} training ids for validation needs at least {num_ids + 2} "
                        f"ids, found {len(pids)}. Fix: set val_ids to at most {max(len(pids) - 2, 1)} (e.g. --set "
                        f"val_ids=N), or choose the embedding yourself (embedding = \"neck\" or \"pooled\")")
    held = set(ids) if ids is not None else set(pids[-num_ids:])
    train, query, gallery, seen = [], [], [], set()
    for sample in samples:
        if sample.pid not in held:
            train.append(sample)
        elif (sample.pid, sample.camid) in seen:
            gallery.append(sample)
        else:
            seen.add((sample.pid, sample.camid))
            query.append(sample)
    return train, ValidationSplit(query=query, gallery=gallery, pids=sorted(held))


def resolve_attributes(setting: bool | str, data: TrainingData) -> bool:
    """The `attributes` setting made true/false: "auto" is on when some training image has labels.
    True without labels is a DataError naming the file expected and the fix."""
    found = data.labelled_images > 0
    if setting == "auto":
        return found
    if setting and not found:
        raise DataError(_no_labels_message(data))
    return bool(setting)


# -- helpers ---------------------------------------------------------------------------------------


def _load_market(root, progress: bool) -> TrainingData:
    train = load_market1501(root, splits=("train",), progress=progress)
    base = train.root
    query = gallery = None
    if (base / SPLIT_FOLDERS["query"]).is_dir() and (base / SPLIT_FOLDERS["gallery"]).is_dir():
        test = load_market1501(base, splits=("query", "gallery"), progress=progress)
        query, gallery = test.query, test.gallery
    return TrainingData(layout="market", root=base, train=train.train, train_pids=train.train_pids, query=query,
                        gallery=gallery, attribute_file=base / ATTRIBUTE_FILE, attributes=None, eval_attributes=None)


def _load_course(root, val_ids: int, progress: bool) -> TrainingData:
    """Hold out the last `val_ids` ids; the CSV's labels (read by load_course anyway) are kept for both parts."""
    course = load_course(root, verify_images=False, progress=progress)
    if len(course.train_pids) < val_ids + 2:
        raise DataError(f"the course folder {course.root} has {len(course.train_pids)} train ids; holding out "
                        f"val_ids = {val_ids} for validation needs at least {val_ids + 2}. Fix: set val_ids to at "
                        f"most {max(len(course.train_pids) - 2, 1)} (e.g. --set val_ids=N)")
    train, query, gallery = course_validation_split(course, num_ids=val_ids, seed=VALIDATION_SEED)
    verify_images([s.path for s in course.train], progress=progress)
    train_pids = sorted({s.pid for s in train})
    held_out = sorted({s.pid for s in query})
    labels = course.attributes
    return TrainingData(layout="course", root=course.root, train=train, train_pids=train_pids, query=query,
                        gallery=gallery, attribute_file=course.root / ANNOTATIONS_FILE,
                        attributes={pid: labels[pid] for pid in train_pids if pid in labels},
                        eval_attributes={pid: labels[pid] for pid in held_out if pid in labels} or None,
                        validation=ValidationSplit(query=query, gallery=gallery, pids=held_out))


def _hold_out(data: TrainingData, val_ids: int) -> None:
    data.train, data.validation = market_validation_split(data.train, val_ids)
    data.train_pids = sorted({s.pid for s in data.train})


def _read_market_attributes(data: TrainingData) -> None:
    if not data.attribute_file.is_file():
        return
    labels = load_market_attributes(data.attribute_file)
    train_pids = set(data.train_pids)
    data.attributes = {pid: codes for pid, codes in labels["train"].items() if pid in train_pids}
    data.eval_attributes = test_split_labels(data.root)


def _no_labels_message(data: TrainingData) -> str:
    fix = 'or set attributes = "auto" (heads only when labels exist) or attributes = false'
    if data.layout == "course":
        return (f"attributes = true, but {data.attribute_file} has no row for any of the {data.num_train_ids} "
                f"training ids ({data.train_pids[0]:04d}..{data.train_pids[-1]:04d}); expected `id` + the 27 "
                f"attribute columns per course id. Fix: use the course's {ANNOTATIONS_FILE}, {fix}")
    if not data.attribute_file.is_file():
        return (f"attributes = true, but there are no attribute labels: expected {data.attribute_file} (the "
                f"official {ATTRIBUTE_FILE} of the Market-1501_Attribute release), found no such file. Fix: copy "
                f"{ATTRIBUTE_FILE} into {data.root}, {fix}")
    return (f"attributes = true, but {data.attribute_file} labels none of the {data.num_train_ids} training ids "
            f"({data.train_pids[0]:04d}..{data.train_pids[-1]:04d}) in its `train` split; expected the attribute "
            f"file of this data set. Fix: replace it with the matching {ATTRIBUTE_FILE}, {fix}")


def _has_market_folders(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in SPLIT_FOLDERS.values())


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]


def _both_layouts() -> str:
    return ("Expected one of two layouts:\n"
            "  Market-1501: ROOT/bounding_box_train/ (training), query/ + bounding_box_test/ (evaluation), "
            f"{ATTRIBUTE_FILE} (attributes, optional)\n"
            f"  course:      ROOT/train/, test/, queries/, {ANNOTATIONS_FILE}\n"
            "Fix: pass the folder that holds one of them (`reid-export synth DIR` writes a Market-1501 one).")
