"""Drawing the frames of a synthetic video (private to reid_export.data.synthetic).

People are drawn by `render` (the same people and drawing as the synthetic Market-1501), once per pose
into a transparent sprite, then scaled and pasted into a camera's frame far to near, so nearer people
hide farther ones. What each person shows is counted from the pasted pixels: that is the ground truth's
box (the person's full extent, clipped to the frame) and visibility (visible pixels / drawn pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .render import IMAGE_SIZE, draw_sprite

__all__ = ["Placement", "SpriteCache", "CameraLook", "compose_frame"]

_FEET = IMAGE_SIZE[0] - 3  # sprite row of the soles (render.draw_sprite)
_BODY = IMAGE_SIZE[0] * 0.9  # body height in sprite pixels
_PHASES = 8  # walking poses per stride
_SOLID = 128  # alpha from which a sprite pixel counts as the person's


@dataclass(frozen=True)
class Placement:
    pid: int
    x: float  # soles, frame pixels
    y: float
    height: float  # body height in frame pixels
    view: str  # front, back or side
    facing: int  # side view: +1 walks to the image right
    phase: float  # walking phase in strides; 0 when standing


@dataclass(frozen=True)
class CameraLook:
    background: Image.Image  # the empty scene, frame-sized, RGB
    gain: np.ndarray  # per-channel colour cast times brightness, (3,)
    haze: np.ndarray  # grey added after the cast, (3,)
    light: np.ndarray  # brightness across the frame (width,): a lamp or a window on one side
    pillar: tuple[int, int, tuple[int, int, int]] | None  # (x0, x1, colour) of a pillar in front of everyone


class SpriteCache:
    """Sprites (RGBA, sprite-sized) of people in their poses, drawn once each."""

    def __init__(self, people: dict) -> None:
        self.people = people
        self._sprites: dict[tuple, Image.Image] = {}

    def get(self, p: Placement) -> Image.Image:
        step = int(p.phase * _PHASES) % _PHASES if p.view == "side" else 0
        key = (p.pid, p.view, p.facing, step)
        if key not in self._sprites:
            swing = float(np.sin(2 * np.pi * step / _PHASES))
            self._sprites[key] = draw_sprite(self.people[p.pid], p.view, p.facing, swing)
        return self._sprites[key]


def compose_frame(look: CameraLook, placements: list[Placement], sprites: SpriteCache,
                  noise: np.ndarray) -> tuple[Image.Image, list[tuple[int, np.ndarray, float]]]:
    """Draw one frame; returns it with (pid, box x, y, w, h clipped to the frame, visibility) for every person
    with some part inside the frame. `noise` is (height, width, 3) sensor noise added last."""
    frame = look.background.copy()
    width, height = frame.size
    owner = np.zeros((height, width), dtype=np.int16)  # 1 + index of the placement seen at each pixel
    drawn: list[tuple[Placement, np.ndarray, int, int]] = []  # placement, box, owner value, solid pixels
    for n, p in enumerate(sorted(placements, key=lambda q: q.y), 1):  # far (small y) first
        sprite = sprites.get(p)
        scale = p.height / _BODY
        size = (max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale)))
        sprite = sprite.resize(size, Image.BILINEAR)
        left, top = round(p.x - sprite.width / 2), round(p.y - _FEET * scale)
        frame.paste(sprite, (left, top), sprite)
        solid = np.asarray(sprite.getchannel("A")) >= _SOLID
        rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
        if not len(rows):
            continue
        box = np.array([left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1], dtype=np.float64)
        _paint(owner, solid, left, top, n)
        drawn.append((p, box, n, int(solid.sum())))
    if look.pillar is not None:
        x0, x1, colour = look.pillar
        ImageDraw.Draw(frame).rectangle([x0, 0, x1 - 1, height], fill=colour)
        owner[:, x0:x1] = 0
    seen = []
    for p, box, n, total in drawn:
        x0, y0 = max(box[0], 0), max(box[1], 0)
        x1, y1 = min(box[2], width), min(box[3], height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        visible = np.count_nonzero(owner[int(y0):int(y1), int(x0):int(x1)] == n)
        seen.append((p.pid, np.array([x0, y0, x1 - x0, y1 - y0]), visible / total))
    return _camera_effects(frame, look, noise), seen


def _paint(owner: np.ndarray, solid: np.ndarray, left: int, top: int, value: int) -> None:
    """owner[solid pixels of a sprite placed at (left, top)] = value, clipped to the frame."""
    h, w = owner.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + solid.shape[0], h), min(left + solid.shape[1], w)
    if y1 > y0 and x1 > x0:
        region = owner[y0:y1, x0:x1]
        region[solid[y0 - top:y1 - top, x0 - left:x1 - left]] = value


def _camera_effects(frame: Image.Image, look: CameraLook, noise: np.ndarray) -> Image.Image:
    pixels = np.asarray(frame, dtype=np.float32) * look.light[None, :, None] * look.gain + look.haze + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
