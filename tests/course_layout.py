"""A tiny course-layout folder made from a synthetic Market-1501 one."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from reid_export.data.attributes import ATTRIBUTE_NAMES, load_market_attributes


def write_course(market: Path, root: Path, *, labelled_pids: set[int] | None = None,
                 columns: list[str] | None = None) -> Path:
    """train/ renamed to `PPPP_cC_#########.jpg`, test/ and queries/ anonymised, annotations_train.csv from
    the .mat's train labels (only `labelled_pids` when given; attribute columns in `columns` order, the
    canonical order by default). No market_attribute.mat is copied."""
    columns = list(columns or ATTRIBUTE_NAMES)
    for folder in ("train", "test", "queries"):
        (root / folder).mkdir(parents=True)
    for i, p in enumerate(sorted((market / "bounding_box_train").glob("*.jpg"))):
        pid, cam = p.name[:4], p.name[6]
        shutil.copy(p, root / "train" / f"{pid}_c{cam}_{i:09d}.jpg")
    for folder, source in (("test", "bounding_box_test"), ("queries", "query")):
        for i, p in enumerate(sorted((market / source).glob("*.jpg"))):
            shutil.copy(p, root / folder / f"{i:06d}.jpg")
    labels = load_market_attributes(market)["train"]
    with open(root / "annotations_train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *columns])
        for pid, codes in sorted(labels.items()):
            if labelled_pids is None or pid in labelled_pids:
                writer.writerow([f"{pid:04d}", *[codes[n] for n in columns]])
    return root
