"""Who walks where in a synthetic video (private to reid_export.data.synthetic.video).

A camera's plan is a run of episodes started at staggered times, each with people who are free (out of view
for at least the re-entry gap since their last visit). The episodes are the moments where a tracker on motion
alone goes wrong and appearance has to tell people apart:

- group: two or three people walking together, close enough to hide each other, drifting past one another;
  some stop together a while and walk on
- crossing: two people from opposite sides in nearly the same lane meet; in half of them the farther one
  turns back there, hidden behind the nearer, and walks off beside them
- overtake: one walker catches up with a slower one in nearly the same lane and passes
- hidden turn: someone walks behind the occluder (an advertising column), waits there out of sight, and comes
  back the way they came (or walks on)
- single: across; or to a spot, a pause and back out; or to a spot, a long pause and on

A plan is (frames, 5) per person: soles x, y, view (0 side, 1 front, 2 back), facing, walking phase; NaN when
away. Every visit starts and ends outside the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Stage", "plan_camera", "person_height", "EPISODES"]

EPISODES = {"group": 0.4, "crossing": 0.2, "overtake": 0.2, "hidden_turn": 0.1, "single": 0.1}  # chances
_LANES = (0.66, 0.79, 0.92)  # where people walk: soles, as a fraction of the frame height
_EDGE = 0.12  # a visit starts and ends this far outside the frame, as a fraction of its width
_GROUP_SPACING = (0.2, 0.45)  # between members along the way, in body heights (a body is about 0.35 wide)
_GROUP_DRIFT = (0.15, 0.3)  # how far members drift forward and back, in body heights: they pass each other
_SPEED = (0.125, 0.225)  # walking speed, frame widths per second
_APART = (0.01, 0.035)  # depth between two people sharing a lane, fraction of the frame height: one hides the other


@dataclass(frozen=True)
class Stage:
    width: int  # frame size in pixels
    height: int
    frames: int
    fps: float
    gap: tuple[float, float]  # seconds out of view between two visits of a person
    every: tuple[float, float]  # seconds between the starts of two episodes
    occluder: tuple[int, int] | None  # x0, x1 of the column in front of everyone

    def n(self, rng: np.random.Generator, seconds: tuple[float, float]) -> int:
        """A random number of frames between two durations in seconds."""
        return round(rng.uniform(*seconds) * self.fps)


def person_height(y: float | np.ndarray, frame_height: int) -> float | np.ndarray:
    """Body height in pixels of someone whose soles are at row `y`: nearer (lower) is taller."""
    return frame_height * (0.25 + 0.6 * (np.asarray(y) / frame_height - 0.62))


def plan_camera(rng: np.random.Generator, stage: Stage, pids: list[int]) -> dict[int, np.ndarray]:
    """Every person's (frames, 5) plan in one camera."""
    plans = {pid: np.full((stage.frames, 5), np.nan) for pid in pids}
    free_at = {pid: int(rng.integers(0, max(1, stage.frames // 5))) for pid in pids}  # staggered first visits
    kinds, chances = list(EPISODES), list(EPISODES.values())
    t = 0
    while t < stage.frames:
        free = [pid for pid in pids if free_at[pid] <= t]
        kind = kinds[int(rng.choice(len(kinds), p=chances))]
        if kind == "hidden_turn" and stage.occluder is None:
            kind = "single"
        need = {"group": int(rng.integers(2, 4)), "crossing": 2, "overtake": 2}.get(kind, 1)
        if len(free) < need:
            kind, need = "single", 1
        if free:
            members = [free[int(i)] for i in rng.choice(len(free), need, replace=False)]
            for pid, (start, rows) in zip(members, _EPISODE[kind](rng, stage, need)):
                begin = t + start
                rows, begin = rows[max(0, -begin):], max(0, begin)  # a group member may start before frame 1
                n = max(0, min(len(rows), stage.frames - begin))
                plans[pid][begin:begin + n] = rows[:n]
                free_at[pid] = begin + len(rows) + stage.n(rng, stage.gap)
        t += max(1, stage.n(rng, stage.every))
    return plans


# ---------------------------------------------------------------------------------------------
# episodes: each returns [(start frame, rows (n, 5))] per member, starts relative to the episode's

def _group(rng: np.random.Generator, st: Stage, n: int) -> list[tuple[int, np.ndarray]]:
    lead = _Walker(rng, st, int(rng.choice([-1, 1])))
    lead.walk(lead.speed, to=rng.uniform(0.25, 0.75) * st.width)
    if rng.random() < 0.4:
        lead.stand(st.n(rng, (0.6, 1.6)), view=int(rng.integers(1, 3)))
    lead.walk(lead.speed)
    rows = np.asarray(lead.rows)
    walking = np.cumsum(rows[:, 2] == 0)  # wobble moves only while walking
    size = person_height(rows[0, 1], st.height)
    out = [(0, rows)]
    for k in range(1, n):
        spacing = rng.uniform(*_GROUP_SPACING) * size
        amp, period = rng.uniform(*_GROUP_DRIFT) * size, rng.uniform(2, 4.8) * st.fps
        x = rows[:, 0] - rows[:, 3] * k * spacing + amp * np.sin(2 * np.pi * walking / period + rng.uniform(0, 6.3))
        start, x = _outside_to_outside(x, lead.speed, st, rows[:, 3])
        pad = (-start, len(x) - len(rows) + start)  # rows added before and after the lead's
        y = np.pad(rows[:, 1], pad, mode="edge") + rng.choice([-1, 1]) * rng.uniform(*_APART) * st.height
        view = np.pad(np.where(rows[:, 2] == 0, 0, int(rng.integers(1, 3))), pad, mode="edge")
        facing = np.pad(rows[:, 3], pad, mode="edge")
        out.append((start, np.column_stack([x, y, view, facing, _phases(x, y, st, rng)])))
    return out


def _crossing(rng: np.random.Generator, st: Stage, _: int) -> list[tuple[int, np.ndarray]]:
    meet = rng.uniform(0.3, 0.7) * st.width
    lane = _lane(rng, st)
    a = _Walker(rng, st, 1, lane=lane)
    b = _Walker(rng, st, -1, lane=lane + rng.choice([-1, 1]) * rng.uniform(*_APART) * st.height)
    b.speed = a.speed * rng.uniform(0.85, 1.15)
    a.walk(a.speed, to=meet)
    b.walk(b.speed, to=meet)
    far, near = (a, b) if a.lane < b.lane else (b, a)
    turns = rng.random() < 0.5  # the farther one turns back where they meet, out of sight behind the nearer
    offsets = [len(b.rows) - len(a.rows), 0] if len(a.rows) < len(b.rows) else [0, len(a.rows) - len(b.rows)]
    near.walk(near.speed)
    if turns:
        far.stand(st.n(rng, (0, 0.25)), view=int(rng.integers(1, 3)))
        far.turn()
        far.walk(near.speed * rng.uniform(0.95, 1.1))
    else:
        far.walk(far.speed)
    return [(offsets[0], np.asarray(a.rows)), (offsets[1], np.asarray(b.rows))]


def _overtake(rng: np.random.Generator, st: Stage, _: int) -> list[tuple[int, np.ndarray]]:
    d = int(rng.choice([-1, 1]))
    lane = _lane(rng, st)
    slow = _Walker(rng, st, d, lane=lane)
    fast = _Walker(rng, st, d, lane=lane + rng.choice([-1, 1]) * rng.uniform(*_APART) * st.height)
    slow.speed, fast.speed = slow.speed * 0.8, slow.speed * 0.8 * rng.uniform(1.35, 1.7)
    meet = rng.uniform(0.35, 0.65) * st.width
    slow.walk(slow.speed, to=meet)
    fast.walk(fast.speed, to=meet)
    late = len(slow.rows) - len(fast.rows)
    slow.walk(slow.speed)
    fast.walk(fast.speed)
    return [(0, np.asarray(slow.rows)), (late, np.asarray(fast.rows))]


def _hidden_turn(rng: np.random.Generator, st: Stage, _: int) -> list[tuple[int, np.ndarray]]:
    w = _Walker(rng, st, int(rng.choice([-1, 1])))
    w.walk(w.speed, to=sum(st.occluder) / 2)
    w.stand(st.n(rng, (0.3, 1.0)), view=int(rng.integers(1, 3)))
    if rng.random() < 0.7:
        w.turn()
    w.walk(w.speed * rng.uniform(0.8, 1.2))
    return [(0, np.asarray(w.rows))]


def _single(rng: np.random.Generator, st: Stage, _: int) -> list[tuple[int, np.ndarray]]:
    """Across and out (45%), to a spot, a pause and back out (30%), or to a spot, a long pause and on (25%)."""
    w = _Walker(rng, st, int(rng.choice([-1, 1])))
    kind = int(rng.choice(3, p=[0.45, 0.3, 0.25]))
    if kind:
        w.walk(w.speed, to=rng.uniform(0.25, 0.75) * st.width)
        w.stand(st.n(rng, (0.3, 1.0) if kind == 1 else (0.8, 2.0)), view=1 + int(rng.random() < 0.3))
        if kind == 1:
            w.turn()
    w.walk(w.speed)
    return [(0, np.asarray(w.rows))]


_EPISODE = {"group": _group, "crossing": _crossing, "overtake": _overtake, "hidden_turn": _hidden_turn,
            "single": _single}


class _Walker:
    """One person's rows, built step by step from outside the frame: walk, stand, turn."""

    def __init__(self, rng: np.random.Generator, st: Stage, direction: int, lane: float | None = None) -> None:
        self.st, self.d = st, direction  # +1 walks to the image right, so enters on the left
        self.x = -_EDGE * st.width if direction == 1 else (1 + _EDGE) * st.width
        self.lane = _lane(rng, st) if lane is None else lane
        self.slope = rng.uniform(-0.04, 0.04)
        self.speed = rng.uniform(*_SPEED) * st.width / st.fps  # pixels per frame
        self.phase = float(rng.random())
        self.rows: list[list[float]] = []

    def walk(self, speed: float, to: float | None = None) -> None:
        """Walk until past `to`, or (None) out of the frame."""
        while (to is None and self._inside()) or (to is not None and (to - self.x) * self.d > 0) or not self.rows:
            y = self.lane + self.slope * (self.x - self.st.width / 2)
            self.rows.append([self.x, y, 0, self.d, self.phase])
            self.x += self.d * speed
            self.phase += speed / (0.7 * person_height(y, self.st.height))

    def stand(self, frames: int, view: int) -> None:
        y = self.lane + self.slope * (self.x - self.st.width / 2)
        self.rows += [[self.x, y, view, self.d, 0.0]] * frames

    def turn(self) -> None:
        self.d = -self.d

    def _inside(self) -> bool:
        return -_EDGE * self.st.width <= self.x <= (1 + _EDGE) * self.st.width


def _lane(rng: np.random.Generator, st: Stage) -> float:
    return _LANES[int(rng.integers(len(_LANES)))] * st.height + rng.normal(0, 0.012 * st.height)


def _phases(x: np.ndarray, y: np.ndarray, st: Stage, rng: np.random.Generator) -> np.ndarray:
    """Walking phase along a path: strides taken so far."""
    steps = np.abs(np.diff(x, prepend=x[0])) / (0.7 * person_height(y, st.height))
    return float(rng.random()) + np.cumsum(steps)


def _outside_to_outside(x: np.ndarray, speed: float, st: Stage, facing: np.ndarray) -> tuple[int, np.ndarray]:
    """Positions `x` extended at `speed` along the facing so that they start and end outside the frame; returns
    (frames added in front, the positions)."""
    low, high = -_EDGE * st.width, (1 + _EDGE) * st.width
    before, after = [x[0]], [x[-1]]
    while low <= before[-1] <= high:
        before.append(before[-1] - facing[0] * speed)
    while low <= after[-1] <= high:
        after.append(after[-1] + facing[-1] * speed)
    return 1 - len(before), np.concatenate([before[:0:-1], x, after[1:]])
