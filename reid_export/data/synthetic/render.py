"""Drawing for the synthetic Market-1501 (private to reid_export.data.synthetic).

Cameras (colour cast, background scene, blur, resolution, noise, the views they see), people (colours,
clothing, pattern, logo, bags, hat, build, all drawn to agree with their 27 Market attribute codes),
poses, and the rendering of one box: background, clutter, the person (or a distractor, a passer-by,
junk), occluders, then the camera's effects. Drawing happens on a 2x canvas reduced to IMAGE_SIZE.

`synthetic` (the package) plans which boxes exist and calls `sample_camera`, `sample_person` and `render_shot`
with Generators seeded from the words below, so the same seed always gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..attributes import ATTRIBUTE_NAMES, LOWER_COLOURS, UPPER_COLOURS

IMAGE_SIZE = (128, 64)  # (height, width) of every box, as Market-1501
SEED_CAMERA, SEED_PERSON, SEED_PLAN, _TRACK, _IMAGE = range(5)  # first word of every seed, one per purpose

_SS = 2  # supersampling factor of the drawing canvas
_H, _W = IMAGE_SIZE[0] * _SS, IMAGE_SIZE[1] * _SS
_MARGIN = 16  # background textures and noise are larger than a box by this much

RGB = tuple[int, int, int]
_UPPER_RGB = [(28, 28, 32), (228, 228, 222), (196, 36, 42), (112, 52, 146),
              (228, 200, 48), (128, 128, 128), (38, 72, 176), (46, 132, 62)]
_UPPER_P = [0.24, 0.22, 0.09, 0.05, 0.06, 0.14, 0.12, 0.08]  # black and white tops are common
_LOWER_RGB = [(30, 30, 34), (225, 225, 218), (232, 140, 170), (110, 56, 140), (226, 196, 60),
              (124, 124, 126), (44, 74, 150), (52, 118, 60), (112, 76, 44)]
_LOWER_P = [0.36, 0.08, 0.03, 0.03, 0.02, 0.15, 0.22, 0.04, 0.07]  # as Market: black and blue lead
_ACCENTS = _UPPER_RGB + [(235, 140, 40), (240, 150, 180), (120, 200, 230), (150, 110, 70)]
_SKINS = [(246, 212, 184), (232, 188, 156), (208, 158, 118), (172, 122, 86), (124, 84, 58), (92, 62, 44)]
_HAIRS = [(24, 21, 20), (58, 40, 26), (104, 72, 44), (196, 164, 106), (150, 148, 146), (205, 204, 198)]
_HAIR_P = [0.5, 0.26, 0.14, 0.1, 0.0, 0.0]  # grey and white are for the old
_SHOES = [(24, 24, 26), (230, 230, 228), (120, 120, 124), (100, 66, 40), (40, 60, 130), (180, 40, 40)]
_BAGS = [(26, 26, 28), (96, 64, 38), (110, 110, 112), (40, 56, 120), (160, 40, 44), (50, 90, 50), (190, 170, 130)]
_PATTERNS = ("plain", "hstripes", "vstripes", "checks", "logo")
_PATTERN_P = [0.32, 0.2, 0.08, 0.12, 0.28]
_LOGOS = ("circle", "square", "triangle", "diamond", "bar", "ring")
_VIEWS = ("front", "back", "side")
SCENES = 5  # pavement, bricks, trees, building, open space


@dataclass(frozen=True)
class Shot:
    split: str  # train, query or gallery
    name: str  # Market-1501 file name
    pid: int  # 1.., 0 for a distractor, -1 for junk
    camera: int  # 1-6
    key: tuple[int, ...]  # seeds this image; its first two numbers seed the tracklet


@dataclass(frozen=True)
class _Camera:
    gain: np.ndarray  # per-channel colour cast
    haze: np.ndarray  # grey levels added after the cast, per channel
    brightness: float
    blur: float  # box-blur radius at output size
    lowres: float  # 1.0, or the factor a box is shrunk by and blown back up
    noise: np.ndarray  # int16 Gaussian noise, larger than a box, cropped per image
    views: np.ndarray  # probabilities of front, back, side
    clutter: float  # chance of extra objects in the background
    occlusion: float  # chance of an occluding object or passer-by
    background: Image.Image  # texture larger than a box, cropped per image


@dataclass(frozen=True)
class _Person:
    attributes: dict[str, int]  # the 27 Market codes; everything below is drawn to agree with them
    skin: RGB
    hair: RGB
    long_hair: bool
    upper: RGB
    lower: RGB
    lower_kind: str  # trousers, shorts, long_dress, short_dress
    short_sleeves: bool
    pattern: str  # one of _PATTERNS
    accent: RGB  # stripe, check or logo colour
    period: float  # stripe period, in body heights
    logo: str  # one of _LOGOS, seen from the front only
    logo_at: tuple[float, float]  # (u in shoulder half-widths, t)
    logo_size: float
    belt: RGB | None
    shoes: RGB
    hat: RGB | None
    backpack: RGB | None
    bag: RGB | None  # shoulder bag
    bag_side: int  # +1 on the person's left, -1 on the right
    handbag: RGB | None
    handbag_side: int
    width: float  # build
    head: float  # head size relative to an adult's


@dataclass(frozen=True)
class _Pose:
    view: str  # front, back or side
    facing: int  # side view: +1 walks to the image right, -1 to the left
    spread: float  # front/back: feet apart
    arm_out: float  # front/back: hands away from the hips
    stride: float  # side: feet apart
    swing: float  # side: arm swing, -1..1
    lean: float


def sample_camera(rng: np.random.Generator, scene: int) -> _Camera:
    gain = np.exp(rng.normal(0.0, 0.08, 3))
    noise_shape = (IMAGE_SIZE[0] + _MARGIN, IMAGE_SIZE[1] + _MARGIN, 3)
    return _Camera(
        gain=(gain / gain.mean()).astype(np.float32),
        haze=(rng.uniform(0, 22) + rng.normal(0, 5, 3)).astype(np.float32),
        brightness=float(rng.uniform(0.78, 1.1)),
        blur=float(rng.choice([0.0, 0.3, 0.5, 0.8])),
        lowres=float(rng.choice([1.0, 1.0, 0.7, 0.55])),
        noise=np.round(rng.normal(0, rng.uniform(2, 7), noise_shape)).astype(np.int16),
        views=rng.dirichlet([3.0, 3.0, 3.0]),
        clutter=float(rng.uniform(0.1, 0.6)),
        occlusion=float(rng.uniform(0.08, 0.25)),
        background=_background_texture(rng, scene),
    )


def sample_person(rng: np.random.Generator) -> _Person:
    female = rng.random() < 0.45
    age = int(rng.choice(4, p=[0.04, 0.12, 0.76, 0.08])) + 1
    long_hair = rng.random() < (0.75 if female else 0.07)
    short_sleeves = rng.random() < 0.62
    dress = female and rng.random() < 0.3
    short_lower = rng.random() < (0.45 if dress else 0.3)
    up, down = int(rng.choice(8, p=_UPPER_P)), int(rng.choice(9, p=_LOWER_P))
    has = rng.random(5) < [0.08, 0.25, 0.22, 0.1, 0.3]  # hat, backpack, shoulder bag, handbag, belt
    codes = {
        "gender": 2 if female else 1, "hair": 2 if long_hair else 1, "up": 2 if short_sleeves else 1,
        "down": 2 if short_lower else 1, "clothes": 1 if dress else 2, "hat": 1 + int(has[0]),
        "backpack": 1 + int(has[1]), "bag": 1 + int(has[2]), "handbag": 1 + int(has[3]), "age": age,
        **{name: 2 if i == up else 1 for i, name in enumerate(UPPER_COLOURS)},
        **{name: 2 if i == down else 1 for i, name in enumerate(LOWER_COLOURS)},
    }
    grey = age == 4 and rng.random() < 0.7
    hair = _HAIRS[int(rng.choice([4, 5]))] if grey else _HAIRS[int(rng.choice(len(_HAIRS), p=_HAIR_P))]
    accent = _pick(rng, _ACCENTS)
    if accent == _UPPER_RGB[up]:  # stripes in the shirt's own colour would be invisible
        accent = _ACCENTS[(_ACCENTS.index(accent) + 1 + int(rng.integers(3))) % len(_ACCENTS)]
    kind = ("short_dress" if short_lower else "long_dress") if dress else ("shorts" if short_lower else "trousers")
    return _Person(
        attributes={name: codes[name] for name in ATTRIBUTE_NAMES},
        skin=_shade(rng, _pick(rng, _SKINS), 6),
        hair=_shade(rng, hair, 6),
        long_hair=bool(long_hair),
        upper=_shade(rng, _UPPER_RGB[up], 13),
        lower=_shade(rng, _LOWER_RGB[down], 13),
        lower_kind=kind,
        short_sleeves=bool(short_sleeves),
        pattern=_PATTERNS[int(rng.choice(len(_PATTERNS), p=_PATTERN_P))],
        accent=_shade(rng, accent, 8),
        period=float(rng.uniform(0.035, 0.07)),
        logo=_LOGOS[int(rng.integers(len(_LOGOS)))],
        logo_at=(float(rng.choice([-0.5, 0.0, 0.5])), float(rng.uniform(0.22, 0.34))),
        logo_size=float(rng.uniform(0.035, 0.06)),
        belt=_shade(rng, _pick(rng, _BAGS), 6) if has[4] and not dress else None,
        shoes=_shade(rng, _pick(rng, _SHOES), 6),
        hat=_shade(rng, _pick(rng, _ACCENTS), 6) if has[0] else None,
        backpack=_shade(rng, _pick(rng, _BAGS), 6) if has[1] else None,
        bag=_shade(rng, _pick(rng, _BAGS), 6) if has[2] else None,
        bag_side=int(rng.choice([-1, 1])),
        handbag=_shade(rng, _pick(rng, _BAGS), 6) if has[3] else None,
        handbag_side=int(rng.choice([-1, 1])),
        width=float(rng.uniform(0.86, 1.18) * (0.94 if female else 1.0)),
        head={1: 1.3, 2: 1.1}.get(age, 1.0),
    )


def draw_sprite(person: _Person, view: str, facing: int, swing: float) -> Image.Image:
    """`person` alone on a transparent RGBA canvas of IMAGE_SIZE, for the synthetic video: walking in a side
    view (`swing`, -1..1, is the arms' and legs' phase) or standing (front or back view). The soles are 3 pixels
    above the bottom edge, the body 0.9 of the canvas tall."""
    pose = _Pose(view=view, facing=facing, spread=0.025, arm_out=0.01, stride=0.02 + 0.11 * abs(swing), swing=swing,
                 lean=0.0)
    canvas = Image.new("RGBA", (_W, _H), (0, 0, 0, 0))
    _draw_person(canvas, ImageDraw.Draw(canvas), person, pose, _W / 2, _H - 3 * _SS, _H * 0.9)
    return canvas.reduce(_SS)


def _sample_pose(rng: np.random.Generator, view: str, facing: int) -> _Pose:
    return _Pose(
        view=view, facing=facing, spread=float(rng.uniform(0.0, 0.035)), arm_out=float(rng.uniform(0.0, 0.03)),
        stride=float(rng.uniform(0.02, 0.13)), swing=float(rng.uniform(-1, 1)), lean=float(rng.uniform(-0.015, 0.015)),
    )


def render_shot(shot: Shot, person: _Person | None, cameras: list[_Camera], seed: int) -> Image.Image:
    cam = cameras[shot.camera - 1]
    rng = np.random.default_rng([seed, _IMAGE, *shot.key])
    canvas = _crop_background(cam, rng)
    draw = ImageDraw.Draw(canvas)
    if rng.random() < cam.clutter:
        _draw_clutter(draw, rng)
    if shot.pid == -1:
        _draw_junk(canvas, draw, cam, rng)
        return _finish(canvas, cam, rng)
    if person is None:  # a distractor: someone new in every box
        person = sample_person(rng)
    track = np.random.default_rng([seed, _TRACK, *shot.key[:2]])  # shared by a person's boxes in one camera
    view, facing = _VIEWS[int(track.choice(3, p=cam.views))], int(track.choice([-1, 1]))
    if rng.random() < 0.1:  # turned around for this box
        view = _VIEWS[int(rng.choice(3, p=cam.views))]
    loose = 1.6 if shot.pid == 0 else 1.0  # distractor boxes are often badly placed
    height = _H * rng.uniform(0.8, 0.95)
    fx = _W / 2 + rng.uniform(-0.07, 0.07) * _W * loose
    fy = _H - rng.uniform(0.01, 0.06) * _H * loose
    behind = rng.random() < cam.occlusion * 0.3
    if behind:
        _draw_passer_by(canvas, draw, rng, height)
    _draw_person(canvas, draw, person, _sample_pose(rng, view, facing), fx, fy, height)
    if not behind and rng.random() < cam.occlusion:
        _draw_occluder(draw, rng)
    return _finish(canvas, cam, rng)


class _Pen:
    """Draws in body coordinates: ``t`` runs from the top of the head (0) to the soles (1) and
    ``u`` across, both in body heights; in a side view +u points where the person walks."""

    def __init__(self, draw: ImageDraw.ImageDraw, pose: _Pose, fx: float, fy: float, h: float) -> None:
        self.draw, self.fx, self.fy, self.h, self.lean = draw, fx, fy, h, pose.lean
        self.d = pose.facing if pose.view == "side" else 1

    def at(self, u: float, t: float) -> tuple[float, float]:
        return self.fx + (u * self.d + self.lean * (1 - t)) * self.h, self.fy - self.h + t * self.h

    def limb(self, a: tuple[float, float], b: tuple[float, float], width: float, colour: RGB) -> None:
        """A thick segment from body point a to b with a rounded end at b."""
        (x0, y0), (x1, y1), r = self.at(*a), self.at(*b), width * self.h / 2
        self.draw.line([(x0, y0), (x1, y1)], fill=colour, width=max(1, round(2 * r)))
        self.draw.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=colour)

    def blob(self, u: float, t: float, ru: float, rt: float, colour: RGB) -> None:
        x, y = self.at(u, t)
        self.draw.ellipse([x - ru * self.h, y - rt * self.h, x + ru * self.h, y + rt * self.h], fill=colour)

    def poly(self, points: list[tuple[float, float]], colour: RGB) -> list[tuple[float, float]]:
        pixels = [self.at(u, t) for u, t in points]
        self.draw.polygon(pixels, fill=colour)
        return pixels

    def box(self, u0: float, t0: float, u1: float, t1: float, colour: RGB) -> None:
        self.poly([(u0, t0), (u1, t0), (u1, t1), (u0, t1)], colour)


def _draw_person(canvas: Image.Image, draw: ImageDraw.ImageDraw, p: _Person, pose: _Pose,
                 fx: float, fy: float, h: float) -> None:
    """Draw ``p`` with the soles at (fx, fy), ``h`` pixels tall, back to front."""
    pen = _Pen(draw, pose, fx, fy, h)
    side, w = pose.view == "side", p.width
    head_rt, head_ru = 0.062 * p.head, 0.047 * p.head
    head_t, shoulder = head_rt + 0.004, 2 * head_rt + 0.035
    sw, ww = (0.065 * w, 0.06 * w) if side else (0.12 * w, 0.105 * w)  # shoulder and waist half-widths
    near = _near_sides(pose)
    if side:  # what is behind the body: far arm, far-side bags, backpack
        hand = -pose.swing * 0.09
        pen.limb((0.0, shoulder + 0.02), (hand, 0.5), 0.045 * w, _dim(p.upper))
        if p.short_sleeves:
            pen.limb((hand * 0.55, 0.36), (hand, 0.5), 0.04 * w, _dim(p.skin))
        if p.handbag and near[p.handbag_side] == -1:
            pen.box(hand - 0.03, 0.5, hand + 0.03, 0.6, _dim(p.handbag))
        if p.bag and near[p.bag_side] == -1:
            pen.box(-0.05, 0.46, 0.04, 0.57, _dim(p.bag))
        if p.backpack:
            pen.box(-0.065 * w - 0.075, 0.19, -0.04 * w, 0.45, p.backpack)
    elif p.long_hair and pose.view == "front":
        pen.box(-head_ru * 1.15, head_t, head_ru * 1.15, 0.25, p.hair)
    _draw_legs(pen, p, pose)
    torso = pen.poly([(-sw, shoulder), (sw, shoulder), (ww, 0.53), (-ww, 0.53)], p.upper)
    if not side:
        for s in (-1, 1):
            pen.blob(s * (sw - 0.02), shoulder + 0.02, 0.035, 0.025, p.upper)
    if p.pattern in ("hstripes", "vstripes", "checks"):
        _paint_pattern(canvas, torso, p.pattern, p.period * h, p.accent)
    if p.pattern == "logo" and pose.view == "front":
        _draw_logo(draw, pen.at(p.logo_at[0] * sw, p.logo_at[1]), p.logo_size * h, p.logo, p.accent)
    if p.belt:
        pen.box(-ww, 0.5, ww, 0.525, p.belt)
    if p.backpack and pose.view == "back":
        pen.box(-0.085 * w, 0.19, 0.085 * w, 0.45, p.backpack)
        pen.box(-0.06 * w, 0.36, 0.06 * w, 0.44, _dim(p.backpack))
    elif p.backpack:  # straps over the shoulders
        for u in ((0.03,) if side else (-0.07 * w, 0.07 * w)):
            pen.limb((u, shoulder), (u, 0.4), 0.017, _dim(p.backpack))
    _draw_head(pen, p, pose, head_t, head_rt, head_ru, shoulder)
    for s in ((1,) if side else (-1, 1)):  # near arm(s) with the handbag
        top = (0.0 if side else s * (sw - 0.012), shoulder + 0.02)
        hand = (pose.swing * 0.09 if side else s * (sw + 0.02 + pose.arm_out * 1.5), 0.5)
        pen.limb(top, hand, 0.048 * w, p.skin if p.short_sleeves else p.upper)
        if p.short_sleeves:
            elbow = (top[0] + (hand[0] - top[0]) * 0.32, top[1] + (hand[1] - top[1]) * 0.32)
            pen.limb(top, elbow, 0.056 * w, p.upper)
        pen.blob(hand[0], 0.51, 0.024, 0.022, p.skin)
        if p.handbag and near[p.handbag_side] == (1 if side else s):
            pen.box(hand[0] - 0.035, 0.52, hand[0] + 0.035, 0.62, p.handbag)
            pen.limb((hand[0] - 0.02, 0.52), (hand[0], 0.5), 0.008, _dim(p.handbag))
    if p.bag and (not side or near[p.bag_side] == 1):  # the shoulder bag on its strap
        s = 0 if side else near[p.bag_side]
        bag_u = s * (ww + 0.03)
        pen.limb((0.0 if side else -s * 0.08 * w, shoulder), (bag_u, 0.47), 0.012, _dim(p.bag))
        pen.box(bag_u - 0.045, 0.46, bag_u + 0.045, 0.57, p.bag)


def _near_sides(pose: _Pose) -> dict[int, int]:
    """Where the person's left (+1) and right (-1) sides show: on the image right/left (+1/-1)
    in front and back views; near/far (+1/-1) in a side view, where someone walking to the
    image right shows their right side."""
    if pose.view == "side":
        return {side: 1 if side == -pose.facing else -1 for side in (-1, 1)}
    flip = 1 if pose.view == "front" else -1
    return {side: side * flip for side in (-1, 1)}


def _draw_legs(pen: _Pen, p: _Person, pose: _Pose) -> None:
    side, w = pose.view == "side", p.width
    dress = p.lower_kind.endswith("dress")
    if side:  # the far leg a little darker
        legs = [(-pose.stride, _dim(p.lower, 0.85), _dim(p.skin, 0.85)), (pose.stride, p.lower, p.skin)]
    else:
        legs = [(s * (0.05 * w + pose.spread), p.lower, p.skin) for s in (-1, 1)]
    for u, cloth, skin in legs:
        hip, ankle = (u * (0.1 if side else 0.85), 0.5), (u, 0.935)
        pen.limb(hip, ankle, 0.07 * w, cloth if p.lower_kind == "trousers" else skin)
        if p.lower_kind == "shorts":
            pen.limb(hip, (hip[0] + (ankle[0] - hip[0]) * 0.42, 0.68), 0.08 * w, cloth)
        pen.blob(u + (0.02 if side else 0.0), 0.965, 0.04 * w, 0.03, p.shoes)
    if dress:
        hem, half = (0.68 if p.lower_kind == "short_dress" else 0.86), (0.06 if side else 0.1) * w
        pen.poly([(-half, 0.46), (half, 0.46), (half + 0.05, hem), (-half - 0.05, hem)], p.lower)
    else:  # the seat, joining the legs
        half = (0.06 if side else 0.09) * w
        pen.box(-half, 0.48, half, 0.58, p.lower)


def _draw_head(pen: _Pen, p: _Person, pose: _Pose, head_t: float, rt: float, ru: float, shoulder: float) -> None:
    pen.box(-0.02, 2 * rt - 0.01, 0.02, shoulder + 0.01, p.skin)  # neck
    if pose.view == "side":
        pen.blob(-0.012, head_t - 0.006, ru, rt, p.hair)
        pen.blob(0.012, head_t + 0.012, ru * 0.85, rt * 0.82, p.skin)
        if p.long_hair:
            pen.box(-ru * 1.1, head_t, -0.005, 0.25, p.hair)
    elif pose.view == "front":
        pen.blob(0, head_t - 0.008, ru * 1.06, rt * 0.98, p.hair)
        pen.blob(0, head_t + 0.01, ru * 0.88, rt * 0.84, p.skin)
    else:
        pen.blob(0, head_t, ru * 1.05, rt, p.hair)
        if p.long_hair:
            pen.box(-ru * 1.15, head_t, ru * 1.15, 0.26, p.hair)
    if p.hat:
        x, y = pen.at(0, head_t - rt * 0.35)
        rx, ry = ru * 1.15 * pen.h, rt * 0.9 * pen.h
        pen.draw.chord([x - rx, y - ry, x + rx, y + ry], 180, 360, fill=p.hat)
        brim = (0.0, 0.075) if pose.view == "side" else (-ru * 1.2, ru * 1.2)
        pen.box(brim[0], head_t - rt * 0.38, brim[1], head_t - rt * 0.28, _dim(p.hat))


def _paint_pattern(canvas: Image.Image, torso: list[tuple[float, float]], kind: str, period: float,
                   colour: RGB) -> None:
    """Stripes or checks of ``period`` pixels over the torso polygon."""
    xs, ys = [x for x, _ in torso], [y for _, y in torso]
    x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
    x1, y1 = min(_W, int(max(xs)) + 1), min(_H, int(max(ys)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).polygon([(x - x0, y - y0) for x, y in torso], fill=255)
    period = max(period, 3.0)
    rows = ((np.arange(y0, y1) % period) < period * 0.42)[:, None]
    cols = ((np.arange(x0, x1) % period) < period * 0.42)[None, :]
    on = {"hstripes": rows, "vstripes": cols, "checks": rows ^ cols}[kind]
    stripes = np.where(on, np.asarray(mask), 0).astype(np.uint8)  # broadcasts rows or cols over the box
    canvas.paste(colour, (x0, y0, x1, y1), Image.fromarray(stripes, "L"))


def _draw_logo(draw: ImageDraw.ImageDraw, centre: tuple[float, float], size: float, shape: str, colour: RGB) -> None:
    x, y, r = centre[0], centre[1], size / 2
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif shape == "ring":
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=max(2, round(r / 2.5)))
    elif shape == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    elif shape == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(x, y - r * 1.2), (x + r, y), (x, y + r * 1.2), (x - r, y)], fill=colour)
    else:  # bar: a line of lettering across the chest
        draw.rectangle([x - 2 * r, y - r / 2.5, x + 2 * r, y + r / 2.5], fill=colour)


def _draw_passer_by(canvas: Image.Image, draw: ImageDraw.ImageDraw, rng: np.random.Generator, height: float) -> None:
    other = sample_person(rng)
    pose = _sample_pose(rng, _VIEWS[int(rng.integers(3))], int(rng.choice([-1, 1])))
    fx = _W / 2 + rng.choice([-1, 1]) * rng.uniform(0.45, 0.75) * _W
    _draw_person(canvas, draw, other, pose, fx, _H - rng.uniform(0.0, 0.1) * _H, height * rng.uniform(0.8, 1.0))


def _draw_occluder(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    colour = tuple(int(c) for c in rng.integers(40, 200, 3))
    if rng.random() < 0.5:  # something low in front: a bench, a car bonnet, a railing
        top = _H * rng.uniform(0.7, 0.88)
        left, right = sorted(rng.uniform(-0.3, 1.3, 2) * _W)
        draw.rectangle([left, top, max(right, left + _W * 0.5), _H], fill=colour)
        draw.line([(left, top + 4), (right, top + 4)], fill=_dim(colour), width=3)
    else:  # a pole or a door frame at one side
        x = _W * rng.choice([rng.uniform(-0.1, 0.25), rng.uniform(0.75, 1.1)])
        draw.rectangle([x, 0, x + _W * rng.uniform(0.08, 0.25), _H], fill=colour)


def _draw_clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(1, 4))):  # signs, windows, parked things: muted colours
        x, y = rng.uniform(-0.2, 1.0) * _W, rng.uniform(-0.1, 0.9) * _H
        colour = tuple(int(c) for c in rng.integers(40, 210) * 0.6 + rng.integers(40, 210, 3) * 0.4)
        draw.rectangle([x, y, x + rng.uniform(0.1, 0.5) * _W, y + rng.uniform(0.05, 0.3) * _H], fill=colour)


def _draw_junk(canvas: Image.Image, draw: ImageDraw.ImageDraw, cam: _Camera, rng: np.random.Generator) -> None:
    kind = rng.random()
    if kind < 0.35:  # background only
        if rng.random() < 0.5:
            _draw_occluder(draw, rng)
        return
    person = sample_person(rng)
    pose = _sample_pose(rng, _VIEWS[int(rng.choice(3, p=cam.views))], int(rng.choice([-1, 1])))
    if kind < 0.75:  # far too close: a piece of a person fills the box
        h = _H * rng.uniform(1.8, 3.5)
        fx, fy = _W / 2 + rng.uniform(-0.12, 0.12) * h, _H / 2 + h * (1 - rng.uniform(0.1, 0.9))
    else:  # mostly outside the box
        h = _H * rng.uniform(0.7, 1.0)
        fx, fy = _W / 2 + rng.choice([-1, 1]) * rng.uniform(0.5, 0.7) * _W, _H * rng.uniform(0.95, 1.3)
    _draw_person(canvas, draw, person, pose, fx, fy, h)


def _finish(canvas: Image.Image, cam: _Camera, rng: np.random.Generator) -> Image.Image:
    """Camera and per-box effects: resolution, blur, colour cast, brightness, noise."""
    image = canvas.reduce(_SS)
    if cam.lowres < 1.0:
        small = (round(IMAGE_SIZE[1] * cam.lowres), round(IMAGE_SIZE[0] * cam.lowres))
        image = image.resize(small, Image.BILINEAR).resize(image.size, Image.BILINEAR)
    radius = cam.blur * rng.uniform(0.6, 1.4)
    if radius > 0.25:
        image = image.filter(ImageFilter.BoxBlur(radius))
    gain = cam.gain * cam.brightness * rng.uniform(0.85, 1.15) * np.exp(rng.normal(0, 0.03, 3))
    lut = np.arange(256, dtype=np.float32)[None, :] * gain[:, None] + cam.haze[:, None]
    image = image.point(np.clip(lut, 0, 255).astype(np.uint8).ravel().tolist())
    y, x = (int(v) for v in rng.integers(0, _MARGIN + 1, 2))
    noise = cam.noise[y:y + IMAGE_SIZE[0], x:x + IMAGE_SIZE[1]]
    pixels = np.asarray(image, np.int16) + (noise if rng.random() < 0.5 else -noise)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _crop_background(cam: _Camera, rng: np.random.Generator) -> Image.Image:
    x, y = (int(v) for v in rng.integers(0, 2 * _MARGIN + 1, 2))
    return cam.background.crop((x, y, x + _W, y + _H))


def _background_texture(rng: np.random.Generator, kind: int) -> Image.Image:
    h, w = _H + 2 * _MARGIN, _W + 2 * _MARGIN
    wall, ground = (rng.uniform(70, 190) + rng.normal(0, 14, 3) for _ in range(2))
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    image = np.ones((h, w, 1), np.float32) * wall
    if kind == 0:  # pavement: wall above a horizon, tiled ground below
        horizon = int(rng.uniform(0.3, 0.6) * h)
        image[horizon:] = ground
        tile = int(rng.integers(12, 26))
        image[horizon::tile] *= 0.8
        image[horizon:, ::tile * 2] *= 0.85
    elif kind == 1:  # bricks
        image = image * np.array([1.15, 0.9, 0.8], np.float32)
        row = int(rng.integers(10, 18))
        image[::row] *= 0.7
        for r in range(0, h, row):
            image[r:r + row, (r // row % 2) * row::2 * row] *= 0.75
    elif kind == 2:  # trees and bushes
        image = image * 0 + np.array([70, 105, 60], np.float32) * rng.uniform(0.6, 1.2)
        image = image + _smooth_noise(rng, (h, w), (28, 14), 40)
    elif kind == 3:  # a building front with windows
        cell = int(rng.integers(40, 80))
        glass = rng.uniform(30, 90) + rng.normal(0, 8, 3)
        for y in range(int(rng.integers(0, cell)), h, cell):
            for x in range(int(rng.integers(0, cell)), w, cell):
                image[y:y + cell * 3 // 5, x:x + cell * 3 // 5] = glass
    else:  # open space: sky or a far wall fading into the ground
        image = (1 - t) * wall + t * ground
    image = image + _smooth_noise(rng, (h, w), (8, 5), 18)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int],
                  amplitude: float) -> np.ndarray:
    """Blotchy noise, mostly brightness with a little colour."""
    coarse = rng.random(cells)[..., None] * 0.8 + rng.random((*cells, 3)) * 0.2
    coarse = Image.fromarray((coarse * 255).astype(np.uint8), "RGB")
    fine = np.asarray(coarse.resize((size[1], size[0]), Image.BICUBIC), dtype=np.float32)
    return (fine / 255 - 0.5) * 2 * amplitude


def _shade(rng: np.random.Generator, colour: RGB, spread: float) -> RGB:
    base = np.asarray(colour, np.float32) * rng.uniform(0.87, 1.13) + rng.normal(0, spread, 3)
    return tuple(int(c) for c in np.clip(base, 0, 255))


def _dim(colour: RGB, factor: float = 0.75) -> RGB:
    return tuple(int(c * factor) for c in colour)


def _pick(rng: np.random.Generator, palette: list[RGB]) -> RGB:
    return palette[int(rng.integers(len(palette)))]
