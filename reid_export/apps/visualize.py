"""Ranked lists as pictures: each query next to its top-k gallery images, coloured as the metric sees them.

    files = visualize_rankings("data/Market", "engines/model.onnx", "runs/vis", num_queries=8, top_k=10)

One PNG per query and a `contact_sheet.png` stacking them all. A row reads left to right: the
query (blue frame), then the gallery ranked by cosine distance, each image upscaled with its rank,
distance, pid and camera under it. Frames follow the official Market-1501 protocol:

    green   same person, other camera: a correct match
    red     another person, distractors (pid 0000) included
    grey    junk, ignored by the metric: the same person on the same camera, or pid -1; shown
            faded but kept in place so the row shows what the runtime really ranked

When the runtime outputs `attributes`, the decoded predictions are written under the row, and
when the data folder has `market_attribute.mat` with test labels for the query's pid, wrong ones
are red with the true value next to them. Pillow draws everything, with its built-in font.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.attributes import LOWER_COLOURS, UPPER_COLOURS, decode_probabilities, test_split_labels
from ..data.market1501 import Sample, load_market1501
from ..decode import open_rgb
from ..errors import ReidExportError
from ..evaluation.distances import pairwise_distance
from ..evaluation.protocol import JUNK_PID, match_status
from ..files import atomic_path, check_writable_dir
from ..images import decode_images
from ..progress import progress_bar
from ..runtimes import infer_images, make_runtime, parse_model_spec

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["Layout", "Hit", "RankedQuery", "visualize_rankings", "choose_queries", "rank_gallery",
           "describe_attributes", "render_row", "render_contact_sheet", "STATUS_COLOURS"]

Colour = tuple[int, int, int]
STATUS_COLOURS: dict[str, Colour] = {
    "query": (40, 100, 220),
    "match": (30, 160, 60),
    "wrong": (215, 40, 40),
    "distractor": (215, 40, 40),  # a distractor is a wrong answer like any other person
    "junk": (150, 150, 150),
}
_TEXT, _MUTED, _BACKGROUND = (20, 20, 20), (110, 110, 110), (255, 255, 255)
_EMBED_CHUNK = 512  # gallery images decoded and embedded at a time, so memory stays bounded


@dataclass(frozen=True)
class Layout:
    """Geometry of a row, in output pixels. Text sits in fixed-height lines: one title line above the
    tiles, two caption lines under each tile, then `text_lines` wrapped lines (notes, legend,
    attributes), so the size of a picture follows from these numbers and that count alone."""

    crop_width: int = 64  # every image is first resized to the Market-1501 box size ...
    crop_height: int = 128
    scale: int = 2  # ... then upscaled by this factor
    border: int = 5  # coloured frame around each image
    gap: int = 6  # between two gallery tiles, and between blocks of a row
    query_gap: int = 24  # between the query and the first gallery tile (a rule is drawn in it)
    margin: int = 12  # around the row
    line_height: int = 18  # one line of text
    font_size: int = 13  # size of the default font where Pillow can scale it
    caption_lines: int = 2  # under each tile: rank and distance, then pid, camera and verdict

    @property
    def tile_size(self) -> tuple[int, int]:
        """(width, height) of one framed image."""
        return self.crop_width * self.scale + 2 * self.border, self.crop_height * self.scale + 2 * self.border

    def tile_x(self, position: int) -> int:
        """Left edge of a tile: position 0 is the query, 1..k the ranked gallery images."""
        width = self.tile_size[0]
        if position == 0:
            return self.margin
        return self.margin + width + self.query_gap + (position - 1) * (width + self.gap)

    @property
    def tiles_y(self) -> int:
        """Top edge of every tile, under the title line."""
        return self.margin + self.line_height + self.gap

    @property
    def text_y(self) -> int:
        """Top of the wrapped text under the captions."""
        return self.tiles_y + self.tile_size[1] + self.caption_lines * self.line_height + self.gap

    def row_size(self, top_k: int, text_lines: int = 0) -> tuple[int, int]:
        """(width, height) of a row with `top_k` gallery tiles and `text_lines` lines of text under them."""
        width = self.tile_x(top_k) + self.tile_size[0] + self.margin
        return width, self.text_y + text_lines * self.line_height + self.margin


@dataclass(frozen=True)
class Hit:
    sample: Sample
    distance: float  # cosine distance to the query, 0 (same direction) .. 2
    status: str  # "match", "wrong", "distractor" or "junk" (a key of STATUS_COLOURS)


@dataclass(frozen=True)
class RankedQuery:
    query: Sample
    hits: list[Hit]  # the top-k gallery images, closest first
    num_gallery: int  # gallery images ranked
    num_matches: int  # gallery images the metric counts as correct (same pid, other camera)
    attributes: list[tuple[str, bool | None]] | None = None  # describe_attributes() of the query, if predicted


def visualize_rankings(data_root: str | Path, model_spec: str, out_dir: str | Path, *, num_queries: int = 8,
                       top_k: int = 10, seed: int = 0, progress: bool = True) -> list[Path]:
    """Draw the top-`top_k` gallery images of `num_queries` queries of the Market-1501 folder
    `data_root`, ranked by the model `model_spec` (`PATH` or `RUNTIME=PATH`), into `out_dir`.

    The queries are a seeded choice spread over identities (`choose_queries`). `out_dir` must be
    new or empty: nothing is ever overwritten. Returns the PNG files written, one per query in
    the order chosen, then `contact_sheet.png`.
    """
    if num_queries < 1 or top_k < 1:
        raise ReidExportError(f"num_queries and top_k must be 1 or more; got num_queries={num_queries}, "
                              f"top_k={top_k}")
    out = _check_out_dir(Path(out_dir))
    name, path = parse_model_spec(model_spec)
    data = load_market1501(data_root, splits=("query", "gallery"), verify_images=False, progress=progress)
    queries = [data.query[i] for i in choose_queries(data.query, num_queries, seed=seed)]

    with make_runtime(name, path) as runtime:
        q_out = _embed(runtime, [s.path for s in queries], progress=progress, description="queries")
        g_out = _embed(runtime, [s.path for s in data.gallery], progress=progress, description="gallery")
        model_label = f"{runtime.describe()}, {path.name}"
    distances = pairwise_distance(q_out["embedding"], g_out["embedding"], metric="cosine")
    attributes = _query_attributes(q_out.get("attributes"), queries, data.root)

    layout = Layout()
    rows, written = [], []
    try:
        _write_rows(out, queries, distances, data, top_k, attributes, layout, model_label, seed, rows, written)
    except ReidExportError:  # a write error names the file; no half set of pictures is left behind
        for file in written:
            file.unlink(missing_ok=True)
        raise
    return written


def _write_rows(out, queries, distances, data, top_k, attributes, layout, model_label, seed, rows, written) -> None:
    for i, query in enumerate(queries):
        ranked = RankedQuery(
            query=query, hits=rank_gallery(distances[i], query, data.gallery, top_k),
            num_gallery=len(data.gallery), num_matches=sum(_status(query, g) == "match" for g in data.gallery),
            attributes=attributes[i] if attributes else None,
        )
        row = render_row(ranked, layout, model_label=model_label)
        written.append(_save_png(row, out / f"query_{i + 1:02d}_{query.path.stem}.png"))
        rows.append(row)
    sheet = render_contact_sheet(rows, f"{len(rows)} queries of {data.root}, top {top_k} by cosine distance; "
                                       f"model: {model_label}; seed {seed}", layout)
    written.append(_save_png(sheet, out / "contact_sheet.png"))


def _save_png(image, path: Path) -> Path:
    with atomic_path(path) as tmp:  # an OSError becomes one message naming `path`
        image.save(tmp, format="PNG")
    return path


def choose_queries(queries: Sequence[Sample], num: int, *, seed: int = 0) -> list[int]:
    """Indices of `num` queries (fewer if there are fewer): the identities are shuffled with `seed`
    and one query of each is taken in turn, so `num` up to the number of identities gives as many
    different people. The same seed gives the same choice."""
    rng = np.random.default_rng(seed)
    by_pid: dict[int, list[int]] = {}
    for i, sample in enumerate(queries):
        by_pid.setdefault(sample.pid, []).append(i)
    pids = sorted(by_pid)
    pools = {pid: list(rng.permutation(by_pid[pid])) for pid in pids}
    order = [pids[i] for i in rng.permutation(len(pids))]
    chosen: list[int] = []
    while len(chosen) < min(num, len(queries)):
        for pid in order:
            if pools[pid] and len(chosen) < num:
                chosen.append(int(pools[pid].pop()))
    return chosen


def rank_gallery(distances: np.ndarray, query: Sample, gallery: Sequence[Sample], top_k: int) -> list[Hit]:
    """The `top_k` closest gallery images, ties kept in gallery order, each with its protocol status."""
    order = np.argsort(distances, kind="stable")[:top_k]
    return [Hit(gallery[j], float(distances[j]), _status(query, gallery[j])) for j in order]


def describe_attributes(predicted: Mapping[str, int],
                        truth: Mapping[str, int] | None = None) -> list[tuple[str, bool | None]]:
    """Short phrases for 27 predicted Market codes, e.g. ("female", True), ("upper: red", False).

    The second item says whether the phrase agrees with `truth` (None without it); a wrong phrase
    carries the true value, e.g. "male (true: female)". Carried items appear when predicted, or
    when missed ("no backpack (true: backpack)"). A colour is right when the truth marks it.
    """
    phrases = []
    for name in ("gender", "hair", "age", "up", "down", "clothes"):
        phrases.append(_phrase(_WORDS[name][predicted[name]], None if truth is None else _WORDS[name][truth[name]]))
    for name, word in _CARRIED.items():
        said, true = predicted[name] == 2, truth is not None and truth[name] == 2
        if said or true:
            phrases.append(_phrase(word if said else f"no {word}",
                                   None if truth is None else (word if true else f"no {word}")))
    for half, names in (("upper", _UPPER), ("lower", _LOWER)):
        marked = [c for c, n in names.items() if predicted[n] == 2]
        text = f"{half}: {'/'.join(marked) or 'no colour'}"
        if truth is None:
            phrases.append((text, None))
            continue
        true = [c for c, n in names.items() if truth[n] == 2]
        if all(truth[names[c]] == 2 for c in marked) and marked:
            phrases.append((text, True))
        else:
            phrases.append((f"{text} (true: {'/'.join(true) or 'none marked'})", False))
    return phrases


def render_row(ranked: RankedQuery, layout: Layout | None = None, *, model_label: str = "") -> Image.Image:
    """One query's picture; its size is `layout.row_size(len(ranked.hits), lines of text)`."""
    from PIL import Image, ImageDraw

    layout = layout or Layout()
    font = _font(layout.font_size)
    q, k = ranked.query, max(len(ranked.hits), 1)
    width = layout.row_size(k)[0]
    matches = f"{ranked.num_matches} correct match{'es' if ranked.num_matches != 1 else ''} in the gallery"
    notes = [[(f"{matches}; ", _TEXT)], [(f"query file {q.path.name}", _MUTED)]]
    if model_label:
        notes[-1][0] = (notes[-1][0][0] + "; ", _MUTED)
        notes.append([(f"model {model_label}", _MUTED)])
    text = []
    for phrases in (notes, _LEGEND, _attribute_phrases(ranked.attributes)):
        text += _wrap(phrases, font, width - 2 * layout.margin) if phrases else []
    image = Image.new("RGB", layout.row_size(k, len(text)), _BACKGROUND)
    draw = ImageDraw.Draw(image)

    title = (f"query {_pid(q.pid)}, camera {q.camid}: top {len(ranked.hits)} of {ranked.num_gallery:,} "
             "gallery images by cosine distance")
    _draw_runs(draw, layout.margin, layout.margin, [(_fit(title, font, width - 2 * layout.margin), _TEXT)], font)
    _draw_tile(image, draw, layout, 0, q.path, STATUS_COLOURS["query"], faded=False)
    _draw_caption(draw, layout, 0, [("QUERY", STATUS_COLOURS["query"])],
                  [(f"{_pid(q.pid)}  cam {q.camid}", _TEXT)], font)
    rule_x = layout.tile_x(1) - layout.query_gap // 2
    draw.line([(rule_x, layout.tiles_y), (rule_x, layout.tiles_y + layout.tile_size[1])], fill=(200, 200, 200),
              width=2)
    for rank, hit in enumerate(ranked.hits, start=1):
        colour, s = STATUS_COLOURS[hit.status], hit.sample
        _draw_tile(image, draw, layout, rank, s.path, colour, faded=hit.status == "junk")
        _draw_caption(draw, layout, rank, [(f"#{rank}", _TEXT), (f"  d {hit.distance:.3f}", _MUTED)],
                      [(f"{_pid(s.pid)}  cam {s.camid}  ", _TEXT), (hit.status, colour)], font)
    for i, line in enumerate(text):
        _draw_runs(draw, layout.margin, layout.text_y + i * layout.line_height, line, font)
    return image


def render_contact_sheet(rows: Sequence[Image.Image], title: str, layout: Layout | None = None) -> Image.Image:
    """`rows` stacked top to bottom under `title` (wrapped at "; "), separated by thin rules."""
    from PIL import Image, ImageDraw

    layout = layout or Layout()
    font = _font(layout.font_size)
    width = max(row.width for row in rows)
    parts = title.split("; ")
    lines = _wrap([[(part + ("; " if i < len(parts) - 1 else ""), _TEXT)] for i, part in enumerate(parts)],
                  font, width - 2 * layout.margin)
    head = 2 * layout.margin + len(lines) * layout.line_height
    sheet = Image.new("RGB", (width, head + sum(row.height for row in rows)), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(lines):
        _draw_runs(draw, layout.margin, layout.margin + i * layout.line_height, line, font)
    y = head
    for row in rows:
        draw.line([(0, y), (width, y)], fill=(190, 190, 190), width=1)
        sheet.paste(row, (0, y))
        y += row.height
    return sheet


# -- private helpers -----------------------------------------------------------------------

_WORDS: dict[str, dict[int, str]] = {
    "gender": {1: "male", 2: "female"},
    "hair": {1: "short hair", 2: "long hair"},
    "age": {1: "young", 2: "teenager", 3: "adult", 4: "old"},
    "up": {1: "long sleeves", 2: "short sleeves"},
    "down": {1: "long lower clothing", 2: "short lower clothing"},
    "clothes": {1: "dress", 2: "pants"},
}
_CARRIED = {"hat": "hat", "backpack": "backpack", "bag": "shoulder bag", "handbag": "handbag"}
_UPPER = {name[2:]: name for name in UPPER_COLOURS}  # "red" -> "upred"
_LOWER = {name[4:]: name for name in LOWER_COLOURS}  # "blue" -> "downblue"
_LEGEND = [  # phrases: a wrapped line breaks between them, never inside
    [("frames: ", _MUTED), ("green", STATUS_COLOURS["match"]), (" = same person, other camera (correct);  ", _TEXT)],
    [("red", STATUS_COLOURS["wrong"]), (" = another person or a distractor (wrong);  ", _TEXT)],
    [("grey", STATUS_COLOURS["junk"]), (" = junk: same person and camera, or pid -1 (ignored by the metric)", _TEXT)],
]


def _status(query: Sample, other: Sample) -> str:
    return match_status(query.pid, query.camid, other.pid, other.camid)


def _check_out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise ReidExportError(f"output folder {out} is a file; expected a folder. "
                              "Fix: choose an empty or new folder.")
    if out.is_dir() and any(out.iterdir()):
        raise ReidExportError(
            f"output folder {out} is not empty; visualize writes new PNG files and never replaces existing ones. "
            "Fix: choose an empty or new folder, or delete its contents first."
        )
    return check_writable_dir(out, what="output folder")  # before the gallery is embedded, not after


def _embed(runtime, paths: list[Path], *, progress: bool, description: str) -> dict[str, np.ndarray]:
    """Decode and embed in chunks under one progress bar, so a full gallery never sits in memory as pixels."""
    parts: dict[str, list[np.ndarray]] = {}
    label = f"embedding {len(paths)} {description} ({runtime.name})"
    with progress_bar(label, len(paths), enabled=progress) as advance:
        for start in range(0, len(paths), _EMBED_CHUNK):
            chunk = paths[start:start + _EMBED_CHUNK]
            images = decode_images(chunk, runtime.contract, progress=False)
            for key, value in infer_images(runtime, images, progress=False).items():
                parts.setdefault(key, []).append(value)
            advance(len(chunk))
    return {key: np.concatenate(values) for key, values in parts.items()}


def _query_attributes(probs: np.ndarray | None, queries: list[Sample], root: Path) -> list | None:
    """describe_attributes() for every query, checked against market_attribute.mat where it labels the pid."""
    if probs is None:
        return None
    predicted = decode_probabilities(probs)
    labels = test_split_labels(root) or {}
    return [describe_attributes(p, labels.get(q.pid)) for p, q in zip(predicted, queries)]


def _attribute_phrases(attributes: list[tuple[str, bool | None]] | None) -> list[list[tuple[str, Colour]]]:
    if not attributes:
        return []
    checked = any(correct is not None for _, correct in attributes)
    note = "predicted attributes (red = wrong vs market_attribute.mat):" if checked else \
        "predicted attributes (no labels for this pid):"
    phrases = [[(note + " ", _MUTED)]]
    for i, (text, correct) in enumerate(attributes):
        phrases.append([(text + (", " if i < len(attributes) - 1 else ""),
                         STATUS_COLOURS["wrong"] if correct is False else _TEXT)])
    return phrases


def _phrase(said: str, true: str | None) -> tuple[str, bool | None]:
    if true is None:
        return said, None
    return (said, True) if said == true else (f"{said} (true: {true})", False)


def _pid(pid: int) -> str:
    return "-1" if pid == JUNK_PID else f"{pid:04d}"


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: scalable
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()  # older Pillow or no FreeType: the small bitmap font


def _draw_tile(image, draw, layout: Layout, position: int, path: Path, colour: Colour, *, faded: bool) -> None:
    from PIL import Image, ImageOps

    x, y = layout.tile_x(position), layout.tiles_y
    w, h = layout.tile_size
    draw.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
    crop = open_rgb(path).resize((layout.crop_width, layout.crop_height), Image.Resampling.BILINEAR)
    upscaled = (layout.crop_width * layout.scale, layout.crop_height * layout.scale)
    crop = crop.resize(upscaled, Image.Resampling.BICUBIC)
    if faded:  # junk: grey and washed out, still recognisable
        crop = Image.blend(ImageOps.grayscale(crop).convert("RGB"), Image.new("RGB", crop.size, _BACKGROUND), 0.45)
    image.paste(crop, (x + layout.border, y + layout.border))


def _draw_caption(draw, layout: Layout, position: int, first: list, second: list, font) -> None:
    x = layout.tile_x(position) + 2
    y = layout.tiles_y + layout.tile_size[1] + 2
    _draw_runs(draw, x, y, first, font)
    _draw_runs(draw, x, y + layout.line_height, second, font)


def _draw_runs(draw, x: int, y: int, runs: list[tuple[str, Colour]], font) -> None:
    for text, colour in runs:
        draw.text((x, y), text, fill=colour, font=font)
        x += font.getlength(text)


def _wrap(phrases: list[list[tuple[str, Colour]]], font, width: int) -> list[list[tuple[str, Colour]]]:
    """Lay phrases (lists of coloured runs) into lines no wider than `width`, breaking only between
    phrases; a phrase longer than a line gets a line of its own (cut short if it is one run)."""
    lines: list[list[tuple[str, Colour]]] = [[]]
    used = 0.0
    for phrase in phrases:
        if len(phrase) == 1:
            phrase = [(_fit(phrase[0][0], font, width), phrase[0][1])]
        length = sum(font.getlength(text) for text, _ in phrase)
        if lines[-1] and used + length > width:
            lines.append([])
            used = 0.0
        lines[-1].extend(phrase)
        used += length
    return lines


def _fit(text: str, font, width: int) -> str:
    """`text`, cut short with "..." if it is wider than `width`."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."
