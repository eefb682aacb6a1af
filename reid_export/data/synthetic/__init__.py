"""Synthetic Market-1501: drawn pedestrians written in the official Market-1501 layout.

No real data set can be downloaded here, so the demo, the tests and the benchmarks train and
evaluate on this one. It is made to be hard enough to be worth measuring: identities share
colours and attributes widely and differ in detail (clothing pattern, logo, shoes, skin, hair,
bags, hat, build), and six cameras differ in colour cast, background, blur, resolution and the
views they see (a logo only from the front, a backpack from the back, bag side flipping).

Layout, as Market-1501 (128 x 64 JPEG boxes, ``PPPP_cCsS_FFFFFF_BB.jpg``)::

    out_dir/bounding_box_train/   training ids, 0001 upwards
    out_dir/bounding_box_test/    gallery: test ids, 0000 distractors, -1 junk
    out_dir/query/                one image per camera per test id
    out_dir/market_attribute.mat  the 27 attribute codes per id, official layout (train / test)

Every random choice comes from a numpy Generator seeded by (seed, camera), (seed, identity) or
(seed, image), so a seed always gives the same bytes whatever order images are written in.

The drawing (cameras, people, poses, backgrounds, noise) lives in `render`;
this module plans the boxes, checks arguments and folders, writes the files and shows progress.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DataError, ReidExportError
from ...files import check_free_space, check_writable_dir, remove_empty_folders
from ...progress import progress_bar
from ..attributes import ATTRIBUTE_FILE, save_market_attributes
from ..market1501 import SPLIT_FOLDERS
from .render import IMAGE_SIZE, SCENES, SEED_CAMERA, SEED_PERSON, SEED_PLAN, Shot, render_shot, sample_camera, sample_person

__all__ = ["SynthSummary", "generate_market1501", "SPLIT_FOLDERS", "IMAGE_SIZE", "JPEG_QUALITY"]

JPEG_QUALITY = 90  # fixed so that a seed gives the same bytes
_BYTES_PER_IMAGE = 8_000  # a generous size of one 128 x 64 JPEG box, for the free-space check
NUM_CAMERAS = 6


@dataclass
class SynthSummary:
    out_dir: Path  # root folder holding the three Market-1501 folders
    counts: dict[str, dict[str, int]]  # split -> {"images", "ids"}; gallery ids count real test ids only
    distractors: int  # gallery images of pid 0000
    junk: int  # gallery images of pid -1
    seconds: float  # wall time of the whole generation
    images_per_sec: float  # images rendered and written per second
    attributes: dict[int, dict[str, int]] = field(repr=False)  # pid -> 27 Market attribute codes

    @property
    def total_images(self) -> int:
        return sum(c["images"] for c in self.counts.values())


def generate_market1501(
    out_dir: str | Path,
    *,
    train_ids: int = 150,
    test_ids: int = 100,
    seed: int = 0,
    distractors: int = 300,
    junk: int = 100,
    train_images: tuple[int, int] = (10, 14),
    gallery_images: tuple[int, int] = (10, 15),
    cameras_per_id: tuple[int, int] = (2, 6),
    progress: bool = True,
) -> SynthSummary:
    """Write a synthetic Market-1501 data set under ``out_dir`` and describe what was written.

    Train ids are ``1..train_ids``, test ids follow them. Each id is seen by ``cameras_per_id``
    cameras (inclusive range). A train id gets ``train_images`` boxes over its cameras; a test id
    gets ``gallery_images`` gallery boxes over its cameras plus one query per camera, so every
    query has a match on another camera. ``distractors`` (pid 0000, other people) and ``junk``
    (pid -1, partial or empty boxes) go to the gallery only. The attributes drawn are written to
    ``market_attribute.mat`` (train ids under ``train``, test ids under ``test``). Refuses to
    touch a split folder that already holds files, or an existing ``market_attribute.mat``.
    """
    _check_arguments(train_ids, test_ids, seed, distractors, junk, train_images, gallery_images, cameras_per_id)
    out = Path(out_dir)
    _check_out_dir(out)
    start = time.perf_counter()

    scenes = np.random.default_rng([seed, SEED_CAMERA, 0]).permutation(NUM_CAMERAS) % SCENES  # every scene used
    cameras = [
        sample_camera(np.random.default_rng([seed, SEED_CAMERA, c]), int(scenes[c - 1]))
        for c in range(1, NUM_CAMERAS + 1)
    ]
    pids = range(1, train_ids + test_ids + 1)
    people = {pid: sample_person(np.random.default_rng([seed, SEED_PERSON, pid])) for pid in pids}
    names: set[str] = set()
    shots: list[Shot] = []
    for pid in pids:
        split = "train" if pid <= train_ids else "test"
        counts = train_images if split == "train" else gallery_images
        shots += _plan_identity(np.random.default_rng([seed, SEED_PLAN, pid]), pid, split, counts, cameras_per_id, names)
    for kind, count in (("distractor", distractors), ("junk", junk)):
        shots += _plan_extras(np.random.default_rng([seed, SEED_PLAN, _EXTRA_TAGS[kind]]), kind, count, names)

    check_free_space(out, len(shots) * _BYTES_PER_IMAGE, what=f"the synthetic data set ({len(shots)} images)")
    created = [out / folder for folder in SPLIT_FOLDERS.values() if not (out / folder).exists()]
    written: list[Path] = []
    try:
        for folder in SPLIT_FOLDERS.values():
            (out / folder).mkdir(parents=True, exist_ok=True)
        with progress_bar("writing synthetic Market-1501", len(shots), enabled=progress, transient=False) as advance:
            for shot in shots:
                image = render_shot(shot, people.get(shot.pid), cameras, seed)
                written.append(out / SPLIT_FOLDERS[shot.split] / shot.name)
                image.save(written[-1], format="JPEG", quality=JPEG_QUALITY)
                advance()
        written.append(out / ATTRIBUTE_FILE)
        save_market_attributes(written[-1], {
            split: {pid: people[pid].attributes for pid in pids if (pid <= train_ids) == (split == "train")}
            for split in ("train", "test")
        })
    except (OSError, ReidExportError, KeyboardInterrupt) as e:  # leave no half data set that blocks a rerun
        _remove_partial(written, created)
        if isinstance(e, KeyboardInterrupt):
            raise
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(f"{written[-1] if written else out}: could not write ({reason}); the {len(written) - 1} "
                        "files written so far were removed. Free some space or choose a writable folder, then run "
                        "the command again") from None

    seconds = time.perf_counter() - start
    counts = {
        split: {
            "images": sum(s.split == split for s in shots),
            "ids": len({s.pid for s in shots if s.split == split and s.pid > 0}),
        }
        for split in SPLIT_FOLDERS
    }
    return SynthSummary(
        out_dir=out,
        counts=counts,
        distractors=sum(s.pid == 0 for s in shots),
        junk=sum(s.pid == -1 for s in shots),
        seconds=seconds,
        images_per_sec=len(shots) / max(seconds, 1e-9),
        attributes={pid: dict(person.attributes) for pid, person in people.items()},
    )


# ---------------------------------------------------------------------------------------------
# planning: which boxes exist and what they are called

_EXTRA_TAGS = {"distractor": 10_000, "junk": 20_000}  # stand in for the pid in seeds; real pids stay below


def _plan_identity(
    rng: np.random.Generator, pid: int, split: str, counts: tuple[int, int], cameras_per_id: tuple[int, int],
    names: set[str],
) -> list[Shot]:
    """One tracklet per camera: a sequence, frames a few apart, a query first for a test id."""
    total = int(rng.integers(counts[0], counts[1] + 1))
    n_cams = min(int(rng.integers(cameras_per_id[0], cameras_per_id[1] + 1)), total)
    cams = np.sort(rng.choice(NUM_CAMERAS, n_cams, replace=False)) + 1
    per_cam = 1 + rng.multinomial(total - n_cams, np.full(n_cams, 1.0 / n_cams))
    shots = []
    for cam, n in zip(cams.tolist(), per_cam.tolist()):
        seq, frame, step = int(rng.integers(1, 7)), int(rng.integers(100, 900_000)), int(rng.integers(4, 40))
        splits = ["train"] * n if split == "train" else ["query"] + ["gallery"] * n
        for k, s in enumerate(splits):
            name = _unique_name(names, pid, cam, seq, frame + k * step, int(rng.integers(1, 9)))
            shots.append(Shot(s, name, pid, cam, (pid, cam, k)))
    return shots


def _plan_extras(rng: np.random.Generator, kind: str, count: int, names: set[str]) -> list[Shot]:
    pid = 0 if kind == "distractor" else -1
    shots = []
    for i in range(count):
        cam, seq, frame = int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(100, 999_000))
        name = _unique_name(names, pid, cam, seq, frame, int(rng.integers(1, 9)))
        shots.append(Shot("gallery", name, pid, cam, (_EXTRA_TAGS[kind], i, cam)))
    return shots


def _unique_name(names: set[str], pid: int, cam: int, seq: int, frame: int, box: int) -> str:
    prefix = "-1" if pid < 0 else f"{pid:04d}"
    for bump in range(99):
        name = f"{prefix}_c{cam}s{seq}_{frame:06d}_{(box - 1 + bump) % 99 + 1:02d}.jpg"
        if name not in names:
            names.add(name)
            return name
    raise DataError(f"ran out of box numbers for frame {frame} of camera {cam}; use fewer distractors or junk")


def _check_arguments(
    train_ids: int, test_ids: int, seed: int, distractors: int, junk: int,
    train_images: tuple[int, int], gallery_images: tuple[int, int], cameras: tuple[int, int],
) -> None:
    if train_ids < 1 or test_ids < 1 or train_ids + test_ids > 9999:
        raise DataError(
            f"train_ids and test_ids must be at least 1 and sum to at most 9999 (4-digit Market pids), "
            f"got {train_ids} and {test_ids}"
        )
    if seed < 0 or distractors < 0 or junk < 0:
        raise DataError(f"seed, distractors and junk must be >= 0, got {seed}, {distractors}, {junk}")
    if not 2 <= cameras[0] <= cameras[1] <= NUM_CAMERAS:
        raise DataError(f"cameras_per_id must be (low, high) with 2 <= low <= high <= 6, got {cameras}")
    for label, (low, high), least in (("train_images", train_images, 1), ("gallery_images", gallery_images, 2)):
        if not least <= low <= high:
            raise DataError(f"{label} must be (low, high) with {least} <= low <= high, got {(low, high)}")


def _remove_partial(written: list[Path], created: list[Path]) -> None:
    for path in written:
        path.unlink(missing_ok=True)
    remove_empty_folders(created)  # only if empty: never a folder that held the user's files


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"out_dir {out} is a file; pass a folder for the synthetic Market-1501 data set")
    check_writable_dir(out, what="synth output folder")
    for folder in SPLIT_FOLDERS.values():
        path = out / folder
        if path.is_dir() and any(path.iterdir()):
            raise DataError(
                f"refusing to write the synthetic data set into {path}: that folder already holds files. "
                f"Pick an empty out_dir, or delete {path} first if you no longer need it."
            )
    if (out / ATTRIBUTE_FILE).exists():
        raise DataError(
            f"refusing to write the synthetic data set into {out}: {ATTRIBUTE_FILE} already exists there. "
            f"Pick an empty out_dir, or delete {out / ATTRIBUTE_FILE} first if you no longer need it."
        )


