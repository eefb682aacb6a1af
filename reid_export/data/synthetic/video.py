"""Synthetic multi-camera video with ground truth, in the MOTChallenge layout (`reid-export synth-video`).

One scene seen by several cameras: the same drawn people (`render`'s, but drawn from their own seed words, so
none of them is an identity of the synthetic Market-1501 of the same seed), a static background, colour cast,
lighting and an advertising column in front of everyone per camera. Some people wear another's outfit (same
top, bottom and sleeves; their own skin, hair, pattern, shoes and bags): look-alikes a Re-ID model has to tell
apart by detail. People walk in episodes made to be hard on motion alone (`video_plan`): groups walking
together, crossings where one turns back out of sight, overtakes, turns behind the column; between two visits
a person stays away longer than a tracker's memory. Each camera sees most of the people, so identities
overlap across cameras.

Each camera is one sequence (`data.mot` layout): img1/, gt/gt.txt, det/det.txt and seqinfo.ini with
`scene` and `camera`. The detections are the ground truth with configured noise (`DetectionNoise`): jittered
boxes, misses that grow with occlusion (also in the frames around it), false positives. Every random choice
comes from a Generator seeded by (seed, purpose, camera), so a seed gives the same bytes; the noise has its
own stream, so changing it leaves the frames alone.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import DataError, ReidExportError
from ...files import check_free_space, check_writable_dir
from ...progress import progress_bar
from ..attributes import LOWER_COLOURS, UPPER_COLOURS
from ..mot import PEDESTRIAN, MotSequence, write_rows, write_seqinfo
from .render import SCENES, sample_camera, sample_person
from .video_plan import Stage, person_height, plan_camera
from .video_render import CameraLook, Placement, SpriteCache, compose_frame

__all__ = ["VideoSettings", "DetectionNoise", "VideoSummary", "SIZES", "video_settings", "generate_sequences",
           "make_detections", "person_height"]

SIZES = {  # --size: frame size and how much happens; the other options override the last two
    "small": {"width": 640, "height": 360, "frames": 300, "people": 12},  # the benchmark default: minutes on 2 cores
    "large": {"width": 1280, "height": 720, "frames": 1500, "people": 24},  # real runs
}
JPEG_QUALITY = 90
_SEED_PERSON, _SEED_PLAN, _SEED_CAMERA, _SEED_FRAME, _SEED_DETECTIONS, _SEED_OUTFIT = range(100, 106)  # seed words
_IN_VIEW = 0.8  # chance that a camera sees a given person
_OUTFIT = ("upper", "lower", "lower_kind", "short_sleeves")  # what a look-alike copies
_OUTFIT_CODES = ("up", "down", "clothes", *UPPER_COLOURS, *LOWER_COLOURS)  # and its attribute codes


@dataclass(frozen=True)
class DetectionNoise:
    jitter: float = 0.04  # std of each box edge, as a fraction of the box width (x) or height (y)
    miss: float = 0.03  # chance of missing a fully visible person
    occluded_miss: float = 0.7  # added chance of a miss, times (1 - visibility)
    min_visibility: float = 0.3  # people less visible than this are never detected
    near: int = 3  # visibility counts as the lowest within this many frames: misses start before an occlusion
    false_positives: float = 0.3  # false boxes per frame (Poisson mean), on background


@dataclass(frozen=True)
class VideoSettings:
    cameras: int = 2  # one sequence per camera, all of one scene
    frames: int = 300  # per camera
    people: int = 12  # identities in the scene; each camera sees about 80% of them
    width: int = 640  # frame size in pixels
    height: int = 360
    fps: int = 25
    gap: tuple[float, float] = (1.8, 4.8)  # seconds out of view between two visits (longer than a tracker remembers)
    every: tuple[float, float] = (0.3, 1.0)  # seconds between the starts of two episodes (if someone is free)
    lookalikes: float = 0.3  # share of the people who wear the outfit of someone else in the scene
    noise: DetectionNoise = field(default_factory=DetectionNoise)


@dataclass
class VideoSummary:
    out_dir: Path
    sequences: list[MotSequence]
    boxes: int  # ground-truth rows, all cameras
    detections: int  # det.txt rows, all cameras
    seconds: float


def video_settings(size: str = "small", **overrides) -> VideoSettings:
    """Settings for `size` (small or large) with any field replaced; None values are ignored."""
    if size not in SIZES:
        raise DataError(f"--size {size!r}: choose one of {', '.join(SIZES)}")
    return replace(VideoSettings(), **{**SIZES[size], **{k: v for k, v in overrides.items() if v is not None}})


def generate_sequences(out_dir: str | Path, settings: VideoSettings | None = None, *, seed: int = 0,
                       progress: bool = True) -> VideoSummary:
    """Render `settings.cameras` sequences of one scene under `out_dir` (`synth{seed}-c1`, `-c2`, ...).
    Refuses a sequence folder that already holds files."""
    s = settings or VideoSettings()
    _check_settings(s, seed)
    out = Path(out_dir)
    scene = f"synth{seed}"
    folders = [out / f"{scene}-c{camera}" for camera in range(1, s.cameras + 1)]
    _check_out_dir(out, folders, s)
    start = time.perf_counter()
    sprites = SpriteCache(_people(s, seed))
    sequences, boxes, detections = [], 0, 0
    try:
        with progress_bar("rendering synthetic video", s.cameras * s.frames, enabled=progress, transient=False) as advance:
            for camera, folder in enumerate(folders, 1):
                sequence = MotSequence(name=folder.name, root=folder, length=s.frames, width=s.width, height=s.height,
                                       frame_rate=s.fps, scene=scene, camera=camera)
                gt = _render_camera(sequence, s, seed, sprites, advance)
                dets = make_detections(gt, s.noise, np.random.default_rng([seed, _SEED_DETECTIONS, camera]),
                                       width=s.width, height=s.height, frames=s.frames)
                write_rows(folder / "gt" / "gt.txt", gt)
                write_rows(folder / "det" / "det.txt", dets)
                write_seqinfo(folder, sequence)
                sequences.append(sequence)
                boxes, detections = boxes + len(gt), detections + len(dets)
    except (OSError, ReidExportError, KeyboardInterrupt) as e:  # leave no half sequence that blocks a rerun
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)  # checked empty or absent before the run
        if isinstance(e, KeyboardInterrupt):
            raise
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(f"{out}: could not write the synthetic video ({reason}); the sequences written so far were "
                        "removed. Free some space or choose a writable folder, then run the command again") from None
    return VideoSummary(out, sequences, boxes, detections, time.perf_counter() - start)


def make_detections(gt: np.ndarray, noise: DetectionNoise, rng: np.random.Generator, *, width: int, height: int,
                    frames: int) -> np.ndarray:
    """det.txt rows (frame, -1, x, y, w, h, score, -1, -1, -1) from gt.txt rows: people at least
    `min_visibility` visible, missed with chance `miss + occluded_miss * (1 - visibility)`, edges jittered;
    plus Poisson(`false_positives`) person-sized boxes per frame at random places, with lower scores.
    Misses and scores go by the lowest visibility of the person within `near` frames."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 9)
    vis = _lowest_nearby(gt, noise.near)
    kept = (vis >= noise.min_visibility) & (rng.random(len(gt)) >= noise.miss + noise.occluded_miss * (1 - vis))
    g = gt[kept]
    w, h = g[:, 4], g[:, 5]
    edges = np.stack([g[:, 2], g[:, 3], g[:, 2] + w, g[:, 3] + h], axis=1)
    edges += rng.normal(0, noise.jitter, edges.shape) * np.stack([w, h, w, h], axis=1)
    edges = np.clip(edges, 0, [width, height, width, height])
    edges[:, 2:] = np.maximum(edges[:, 2:], edges[:, :2] + 2)
    score = np.clip(0.92 - 0.45 * (1 - vis[kept]) + rng.normal(0, 0.04, len(g)), 0.05, 1.0)
    true = _det_rows(g[:, 0], edges, score)
    counts = rng.poisson(noise.false_positives, frames)
    fp_frames = np.repeat(np.arange(1, frames + 1), counts)
    feet = rng.uniform(0.62, 1.0, len(fp_frames)) * height
    fh = np.minimum(person_height(feet, height), feet)
    fw = 0.38 * fh
    fx = rng.uniform(0, 1, len(fp_frames)) * (width - fw)
    false = _det_rows(fp_frames, np.stack([fx, feet - fh, fx + fw, feet], axis=1),
                      rng.uniform(0.3, 0.75, len(fp_frames)))
    rows = np.concatenate([true, false])
    return rows[np.argsort(rows[:, 0], kind="stable")]


# ---------------------------------------------------------------------------------------------
# one camera: plan who walks where, then draw frame by frame

def _render_camera(sequence: MotSequence, s: VideoSettings, seed: int, sprites: SpriteCache, advance) -> np.ndarray:
    camera = sequence.camera
    look_rng = np.random.default_rng([seed, _SEED_CAMERA, camera])
    look, noise = _camera_look(look_rng, s, (seed + camera) % SCENES)
    plan_rng = np.random.default_rng([seed, _SEED_PLAN, camera])
    pids = [pid for pid in range(1, s.people + 1) if plan_rng.random() < _IN_VIEW] or [1]
    stage = Stage(s.width, s.height, s.frames, s.fps, s.gap, s.every, look.pillar[:2] if look.pillar else None)
    plans = plan_camera(plan_rng, stage, pids)
    frame_rng = np.random.default_rng([seed, _SEED_FRAME, camera])
    (sequence.root / sequence.image_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for t in range(s.frames):
        placements = [_placement(pid, plan[t], s) for pid, plan in plans.items() if not np.isnan(plan[t, 0])]
        oy, ox = (int(v) for v in frame_rng.integers(0, 17, 2))
        image, seen = compose_frame(look, placements, sprites, noise[oy:oy + s.height, ox:ox + s.width])
        image.save(sequence.image_path(t + 1), format="JPEG", quality=JPEG_QUALITY)
        rows += [[t + 1, pid, *box, 1, PEDESTRIAN, round(visibility, 3)] for pid, box, visibility in seen]
        advance()
    return np.asarray(rows, dtype=np.float64).reshape(-1, 9)


def _people(s: VideoSettings, seed: int) -> dict:
    """The scene's people; about `lookalikes` of them (not the first) wear the outfit of one drawn before them."""
    people = {pid: sample_person(np.random.default_rng([seed, _SEED_PERSON, pid])) for pid in range(1, s.people + 1)}
    rng = np.random.default_rng([seed, _SEED_OUTFIT])
    for pid in range(2, s.people + 1):
        if rng.random() < s.lookalikes:
            other = people[int(rng.integers(1, pid))]
            me = people[pid]
            codes = {**me.attributes, **{k: other.attributes[k] for k in _OUTFIT_CODES if k in other.attributes}}
            people[pid] = replace(me, attributes=codes, **{k: getattr(other, k) for k in _OUTFIT})
    return people


def _placement(pid: int, step: np.ndarray, s: VideoSettings) -> Placement:
    x, y, view, facing, phase = step
    return Placement(pid, float(x), float(y), float(person_height(y, s.height)), ("side", "front", "back")[int(view)],
                     int(facing), float(phase))


def _camera_look(rng: np.random.Generator, s: VideoSettings, scene: int) -> tuple[CameraLook, np.ndarray]:
    cam = sample_camera(rng, scene)  # the synthetic Market camera: its scene texture, colour cast, brightness
    gain = cam.gain * np.exp(rng.normal(0, 0.08, 3))
    x0 = int(rng.uniform(0.3, 0.62) * s.width)  # an advertising column in front of everyone, wide enough to hide
    pillar = (x0, x0 + max(4, int(rng.uniform(0.07, 0.1) * s.width)), tuple(int(c) for c in rng.integers(50, 180, 3)))
    look = CameraLook(
        background=cam.background.resize((s.width, s.height), Image.BICUBIC),
        gain=(gain / gain.mean() * cam.brightness).astype(np.float32),
        haze=cam.haze.astype(np.float32),
        light=(1 + rng.uniform(-0.35, 0.35) * np.linspace(-0.5, 0.5, s.width)).astype(np.float32),
        pillar=pillar,
    )
    noise = rng.normal(0, rng.uniform(2, 6), (s.height + 16, s.width + 16, 3)).astype(np.float32)
    return look, noise


def _lowest_nearby(gt: np.ndarray, near: int) -> np.ndarray:
    """Per gt row, the lowest visibility of the same id within `near` frames (frames it is in view)."""
    key = gt[:, 1] * (gt[:, 0].max(initial=0) + 2 * near + 2) + gt[:, 0]  # id and frame in one number
    order = np.argsort(key, kind="stable")
    keys, vis = key[order], gt[order, 8]
    lowest = gt[:, 8].copy()
    for k in range(-near, near + 1):
        at = np.minimum(np.searchsorted(keys, key + k), len(keys) - 1)
        lowest = np.where(keys[at] == key + k, np.minimum(lowest, vis[at]), lowest)
    return lowest


def _det_rows(frames: np.ndarray, edges: np.ndarray, scores: np.ndarray) -> np.ndarray:
    n = len(frames)
    return np.column_stack([frames, -np.ones(n), edges[:, 0], edges[:, 1], edges[:, 2] - edges[:, 0],
                            edges[:, 3] - edges[:, 1], scores, -np.ones((n, 3))]).reshape(n, 10)


def _check_settings(s: VideoSettings, seed: int) -> None:
    checks = [("--cameras", s.cameras, 1, 9), ("--frames", s.frames, 10, 100_000), ("--people", s.people, 1, 999),
              ("width", s.width, 160, 4096), ("height", s.height, 120, 4096), ("--seed", seed, 0, 2**31 - 1)]
    for option, value, low, high in checks:
        if not low <= value <= high:
            raise DataError(f"{option} must be between {low} and {high}, got {value}")
    n = s.noise
    for name in ("miss", "occluded_miss", "min_visibility"):
        if not 0 <= getattr(n, name) <= 1:
            raise DataError(f"detection noise {name} must be between 0 and 1, got {getattr(n, name)}")
    if n.jitter < 0 or n.false_positives < 0 or n.near < 0:
        raise DataError(f"detection noise jitter, false_positives and near must be >= 0, got {n.jitter}, "
                        f"{n.false_positives}, {n.near}")
    if not 0 <= s.lookalikes <= 1 or not 0 <= s.every[0] <= s.every[1] or not 0 <= s.gap[0] <= s.gap[1] or s.fps < 1:
        raise DataError(f"video settings: lookalikes must be between 0 and 1 (got {s.lookalikes}), fps at least 1 "
                        f"(got {s.fps}), every and gap (low, high) in seconds (got {s.every}, {s.gap})")


def _check_out_dir(out: Path, folders: list[Path], s: VideoSettings) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; pass a folder for the synthetic sequences")
    for folder in folders:
        if folder.is_dir() and any(folder.iterdir()):
            raise DataError(f"refusing to write into {folder}: it already holds files (an earlier synth-video?). "
                            f"Pick an empty folder, another --seed, or delete {folder} first")
    check_writable_dir(out, what="synth-video output folder")
    check_free_space(out, int(s.cameras * s.frames * s.width * s.height * 0.3), what="the synthetic video")
