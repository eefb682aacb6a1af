"""`index build` throughput of the two engines in one run: this process (`--engine local`) against a Ray Data
actor pool (`--engine ray`), on the same images and model, and whether their embeddings agree.

    python benchmarks/index_engines.py --data runs/demo-s5/data --model runs/demo-s5/model.onnx \\
        --work runs/index-engines -o benchmarks/results/index-engines

Each engine builds a gallery from scratch (model loading included: what a user waits for). Ray's start-up
(`ray.init` of a local cluster) is timed apart and left out of its images/s; `ray_start_s` gives it. The
local engine runs first, then Ray, once each (timings on a shared machine are noisy: compare the ratio of
one run). Writes `index-engines.json` and `.md` with the CPU (lscpu's model line) and the command.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from reid_export.serve.gallery import Gallery
from reid_export.serve.indexing import build_gallery, collect_images
from reid_export.serve.ray_index import RayEngine, RaySettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="images: a Market-1501 folder (its bounding_box_test/) or crops")
    parser.add_argument("--model", required=True, help="PATH or RUNTIME=PATH")
    parser.add_argument("--work", required=True, type=Path, help="folder for the two galleries (replaced)")
    parser.add_argument("-o", "--out", required=True, type=Path, help="folder for index-engines.json and .md")
    parser.add_argument("--actors", type=int, default=0, help="Ray actors (0: one per core)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    images = len(collect_images(args.data))
    args.work.mkdir(parents=True, exist_ok=True)
    rows = {}
    t0 = time.perf_counter()
    build_gallery(args.data, args.model, args.work / "local", overwrite=True, batch_size=args.batch_size,
                  progress=False)
    rows["local"] = _row(images, time.perf_counter() - t0)
    t0 = time.perf_counter()
    with RayEngine(RaySettings(actors=args.actors)) as engine:
        start_s = time.perf_counter() - t0
        actors = engine.actors()
        t0 = time.perf_counter()
        build_gallery(args.data, args.model, args.work / "ray", overwrite=True, batch_size=args.batch_size,
                      engine=engine, progress=False)
        rows["ray"] = {**_row(images, time.perf_counter() - t0), "ray_start_s": round(start_s, 1), "actors": actors}
    with Gallery.open(args.work / "local") as a, Gallery.open(args.work / "ray") as b:
        same = [i.source for i in a.items] == [i.source for i in b.items]
        max_abs = float(np.abs(a.embeddings - b.embeddings).max()) if same else None
    result = {"images": images, "model": str(args.model), "data": str(args.data), "engines": rows,
              "ray_over_local": round(rows["ray"]["images_per_sec"] / rows["local"]["images_per_sec"], 2),
              "same_items": same, "embedding_max_abs_diff": max_abs, "cpu": _cpu(),
              "python": platform.python_version(),
              "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index-engines.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "index-engines.md").write_text(_markdown(result))
    print(_markdown(result))


def _row(images: int, seconds: float) -> dict:
    return {"seconds": round(seconds, 1), "images_per_sec": round(images / seconds, 1)}


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    lines = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    return f"{lines.get('Model name', '?')}, {lines.get('CPU(s)', '?')} CPUs"


def _markdown(r: dict) -> str:
    local, ray = r["engines"]["local"], r["engines"]["ray"]
    return (f"# index build: local vs Ray engine\n\n{r['images']} images, model `{r['model']}`; CPU: {r['cpu']}.\n\n"
            "| engine | seconds | images/s |\n|---|---|---|\n"
            f"| local (one process) | {local['seconds']} | {local['images_per_sec']} |\n"
            f"| ray ({ray['actors']} actors x 1 thread) | {ray['seconds']} | {ray['images_per_sec']} |\n\n"
            f"Ray / local: {r['ray_over_local']}x. Ray's start-up ({ray['ray_start_s']} s) is not in its images/s. "
            f"Same items in the same order: {r['same_items']}; largest embedding difference: "
            f"{r['embedding_max_abs_diff']}.\n\nCommand: `{r['command']}`\n")


if __name__ == "__main__":
    main()
