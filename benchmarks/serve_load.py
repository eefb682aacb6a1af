"""Load benchmark of `reid-export serve`: requests/s and p50/p99 latency at several concurrencies, with dynamic
batching on and off, next to the runtime's model-only throughput measured in the same run.

    python benchmarks/serve_load.py --model runs/demo/model.onnx --model openvino=runs/demo/model.onnx \\
        --instances 1,2 --gallery runs/gallery --queries runs/demo/data/query --requests 256 \\
        --concurrency 1,8,32 --out benchmarks/results/serve

Each `--model` (runtimes of the gallery's file: any runtime of the same file fits its gallery) is run with each
`--instances` count, in one run, so the runtimes and instance counts are compared under the same conditions:

1. Model-only reference per model (no server running): `runtime.infer` timed at batch 1 and 32 on real query
   crops (warm-up, then at least `--min-seconds`), batch 1 once more with a 2 ms pause before each call, one
   exact top-k search over the gallery, and per instance count the service without HTTP (`ReidService.search`
   from as many asyncio callers as the highest concurrency, in this process): what batching, instances and
   search deliver before any HTTP work.
2. For batching on (`--max-batch 32 --max-delay-ms D`) and off (`--no-batching`): a fresh `reid-export serve`
   on a free loopback port; per concurrency C, C asyncio workers send `--requests` POST /v1/search in total
   (one query crop each, k=10) and stop; latency is measured per request, client side.
3. A markdown table and load.json; the targets of the issue are checked and printed per model and instance
   count: at C=32 with batching the service delivers >= 80% of the model-only batch-32 images/s, and at C=1 its
   p50 is within 1.3x of (model-only batch 1 after an idle pause + one search), what a lone request cannot
   go below (a lone client's requests reach an idle model: cold caches, cores clocked down).

The load generator shares the machine with the server: on 2 cores it takes CPU from it, which the numbers
include. Everything stays on 127.0.0.1; the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from reid_export.images import decode_images
from reid_export.runtimes import make_runtime, parse_model_spec
from reid_export.serve.gallery import Gallery
from reid_export.serve.indexing import collect_images
from reid_export.serve.stores import EmbeddedStore

K = 10
PACE_S = 0.002  # the pause before each paced batch-1 call


def model_only(model: str, queries: list[Path], gallery_dir: Path, *, min_seconds: float) -> dict:
    """img/s and ms per call at batch 1 and 32, and the search time of one query, in this process."""
    name, path = parse_model_spec(model)
    out = {}
    with make_runtime(name, path) as runtime:
        pixels = decode_images(queries[:32] * (32 // max(1, len(queries[:32])) + 1), runtime.contract,
                               progress=False)[:32]
        for batch in (1, 32):
            x = runtime.contract.normalize_uint8(pixels[:batch])
            for _ in range(3):
                runtime.infer(x)
            times = []
            t_end = time.perf_counter() + min_seconds
            while time.perf_counter() < t_end or len(times) < 5:
                t0 = time.perf_counter()
                runtime.infer(x)
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            out[f"batch{batch}_ms"] = median * 1e3
            out[f"batch{batch}_images_per_sec"] = batch / median
        # batch 1 again with a pause before each call, as a lone client's requests reach the model: on the
        # machines measured here an idle gap of a few ms costs a call ~1 ms (cold caches, cores clocked down)
        x = runtime.contract.normalize_uint8(pixels[:1])
        paced = []
        for _ in range(100):
            time.sleep(PACE_S)
            t0 = time.perf_counter()
            runtime.infer(x)
            paced.append(time.perf_counter() - t0)
        out["batch1_paced_ms"] = statistics.median(paced) * 1e3
        query = runtime.infer(runtime.contract.normalize_uint8(pixels[:1]))["embedding"]
        out["runtime"] = runtime.describe()
        # on a worker thread, as in_process: a BLAS thread count set from the main thread sticks for the process
        worker = threading.Thread(target=lambda: out.update(_search_time(gallery_dir, query, runtime, x)))
        worker.start()
        worker.join()
    return out


def in_process(model: str, gallery_dir: Path, queries: list[Path], *, instances: int, max_batch: int,
               max_delay_ms: float, concurrency: int = 32, seconds: float = 3.0) -> dict:
    """The service without HTTP: `concurrency` asyncio callers of `ReidService.search` (decoded crops, k=10) in this
    process for `seconds`: what the batcher, the instances and the gallery search deliver before any HTTP work."""
    from reid_export.serve.batching import BatchingSettings
    from reid_export.serve.service import ReidService, ServeSettings

    settings = ServeSettings(model=model, gallery=gallery_dir, batching=BatchingSettings(
        max_batch=max_batch, max_delay_ms=max_delay_ms, instances=instances))

    async def run() -> dict:
        service = ReidService(settings)
        await service.start()
        try:
            pixels = [service.contract.decode(p) for p in queries[:64]]
            for p in pixels[:4]:
                await service.search(p, K)  # warm-up
            done = 0
            end = time.perf_counter() + seconds

            async def caller(i: int) -> None:
                nonlocal done
                while time.perf_counter() < end:
                    await service.search(pixels[(i + done) % len(pixels)], K)
                    done += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(caller(i) for i in range(concurrency)))
            return {"concurrency": concurrency, "requests_per_sec": done / (time.perf_counter() - t0),
                    "instances": service.batcher.instances}
        finally:
            await service.stop()

    # on a worker thread: a process whose main thread once set OpenBLAS's thread count ignores later sets from
    # other threads (tests that run the app under TestClient after this in the same process)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(asyncio.run(run())))
    worker.start()
    worker.join()
    if not result:
        raise SystemExit("the in-process service run failed; see the traceback above")
    return result


def start_server(model: str, gallery: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "reid_export.cli", "serve", "--model", model, "--gallery",
                                str(gallery), "--port", str(port), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; run it by hand to see why: "
                             f"reid-export serve --model {model} --gallery {gallery}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 120 s")


def search_request(host: str, port: int, name: str, data: bytes, k: int = K) -> bytes:
    """One complete HTTP/1.1 POST /v1/search (multipart: the image and k), keep-alive, as bytes."""
    boundary = "reidexportload" + hashlib.sha1(data).hexdigest()[:16]
    safe = name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    body = b"".join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{safe}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode(), data,
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n{k}\r\n--{boundary}--\r\n'.encode()])
    head = (f"POST /v1/search HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request, read its whole response (Content-Length framed, as the server answers); the status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise SystemExit("the server answered without Content-Length; the raw client needs it (try --client httpx)")
    await reader.readexactly(length)
    return status


async def load_raw(url: str, bodies: list[tuple[str, bytes]], concurrency: int, requests: int) -> dict:
    """C keep-alive connections, each sending pre-encoded requests one after another: the client's own work per
    request is a socket write and a header parse, so most of the 2 cores stay with the server."""
    host, port = url.removeprefix("http://").split(":")
    encoded = [search_request(host, int(port), name, data) for name, data in bodies]
    latencies: list[float] = []
    errors = warm = 0
    counter = iter(range(requests))

    async def connection():
        nonlocal errors, warm
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for _ in range(2):  # warm-up, not counted
                await _exchange(reader, writer, encoded[0])
            warm += 1
            await ready.wait()
            for i in counter:
                t0 = time.perf_counter()
                status = await _exchange(reader, writer, encoded[i % len(encoded)])
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    ready = asyncio.Event()
    tasks = [asyncio.create_task(connection()) for _ in range(concurrency)]
    while warm < concurrency and not any(t.done() for t in tasks):  # every connection open and warmed up
        await asyncio.sleep(0.01)
    cpu0, t0 = time.process_time(), time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    return _row(concurrency, requests, errors, latencies, time.perf_counter() - t0, time.process_time() - cpu0)


async def load_httpx(url: str, bodies: list[tuple[str, bytes]], concurrency: int, requests: int) -> dict:
    """The same load through httpx.AsyncClient (heavier on the client side; for comparison)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))

    async def worker(client):
        nonlocal errors
        for i in counter:
            name, data = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            r = await client.post(url + "/v1/search", files={"image": (name, data, "image/jpeg")}, data={"k": str(K)})
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for _ in range(min(8, requests)):  # warm-up: connections and the first batches
            name, data = bodies[0]
            await client.post(url + "/v1/search", files={"image": (name, data, "image/jpeg")}, data={"k": str(K)})
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return _row(concurrency, requests, errors, latencies, time.perf_counter() - t0, time.process_time() - cpu0)


def _row(concurrency: int, requests: int, errors: int, latencies: list[float], wall: float, client_cpu: float) -> dict:
    ms = np.array(latencies) * 1e3
    return {"concurrency": concurrency, "requests": requests, "errors": errors, "requests_per_sec": requests / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "client_cpu_ms_per_request": client_cpu * 1e3 / requests, "wall_seconds": wall}


LOADS = {"raw": load_raw, "httpx": load_httpx}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, action="append",
                        help="PATH or RUNTIME=PATH of the gallery's model; repeat it to compare runtimes of the same "
                             "file in one run (e.g. the ONNX under onnxruntime and openvino)")
    parser.add_argument("--gallery", required=True, type=Path)
    parser.add_argument("--queries", required=True, type=Path, help="folder of query crops")
    parser.add_argument("--requests", type=int, default=256, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--instances", default="0",
                        help="the server's --instances, comma-separated to run each (0: one one-thread lane per core "
                             "where the runtime has lanes; 1: one all-core instance)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="model-only timing per batch size")
    parser.add_argument("--client", choices=sorted(LOADS), default="raw",
                        help="raw: pre-encoded HTTP/1.1 on asyncio streams (light); httpx: httpx.AsyncClient")
    parser.add_argument("--batching", default="on,off", help="which server modes to run: on, off or both")
    parser.add_argument("--out", type=Path, help="folder for load.json and load.md")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.batching.split(",")]
    if not modes or set(modes) - {"on", "off"}:
        parser.error(f"--batching takes on, off or on,off; got {args.batching!r}")
    levels = [int(c) for c in args.concurrency.split(",")]
    instance_counts = [int(n) for n in args.instances.split(",")]
    queries = [f.path for f in collect_images(args.queries)]
    bodies = [(p.name, p.read_bytes()) for p in queries[:64]]

    references, in_process_rows, rows = {}, [], []
    for model in args.model:
        references[model] = model_only(model, queries, args.gallery, min_seconds=args.min_seconds)
        for instances in instance_counts:
            in_process_rows.append({"model": model, **in_process(
                model, args.gallery, queries, instances=instances, max_batch=args.max_batch,
                max_delay_ms=args.max_delay_ms, concurrency=max(levels), seconds=args.min_seconds)})
            server_modes = {"on": ["--max-batch", str(args.max_batch), "--max-delay-ms", str(args.max_delay_ms),
                                   "--instances", str(instances)],
                            "off": ["--no-batching", "--instances", str(instances)]}
            for mode in modes:
                rows += _load_server(model, args, server_modes[mode], bodies, levels,
                                     {"model": model, "instances": instances, "batching": mode})
    report = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), "model_only": references,
              "in_process": in_process_rows, "rows": rows, "targets": _targets(references, rows),
              "machine": _machine(), "settings": {"max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms,
                                                  "k": K, "client": args.client, "instances": instance_counts}}
    text = render(report)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "load.json").write_text(json.dumps(report, indent=2))
        (args.out / "load.md").write_text(text)
    return report


def _load_server(model: str, args, extra: list[str], bodies: list, levels: list[int], labels: dict) -> list[dict]:
    """A fresh server for one configuration, loaded at each concurrency in turn."""
    process, url = start_server(model, args.gallery, extra)
    rows = []
    try:
        for c in levels:
            cpu0 = _cpu_seconds(process.pid)
            row = asyncio.run(LOADS[args.client](url, bodies, c, args.requests))
            row["server_cpu_ms_per_request"] = (_cpu_seconds(process.pid) - cpu0) * 1e3 / args.requests
            rows.append({**labels, **row})
            print(f"{model} instances {labels['instances']} batching {labels['batching']:3s} concurrency {c:3d}: "
                  f"{row['requests_per_sec']:7.1f} req/s, p50 {row['p50_ms']:7.1f} ms, p99 {row['p99_ms']:7.1f} ms, "
                  f"errors {row['errors']}, CPU ms/request server {row['server_cpu_ms_per_request']:.1f} "
                  f"client {row['client_cpu_ms_per_request']:.1f}", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    return rows


def _targets(references: dict, rows: list[dict]) -> list[dict]:
    """Per model and instance count, batching on: the share of model-only batch-32 img/s at C=32, and the C=1 p50
    over (model-only batch 1 after an idle pause + one search), the lone request's floor."""
    out = []
    for (model, instances) in dict.fromkeys((r["model"], r["instances"]) for r in rows if r["batching"] == "on"):
        ref = references[model]
        on = {r["concurrency"]: r for r in rows if (r["model"], r["instances"], r["batching"]) == (model, instances, "on")}
        target = {"model": model, "instances": instances}
        if 32 in on:
            target["c32_share_of_model_only_batch32"] = on[32]["requests_per_sec"] / ref["batch32_images_per_sec"]
            target["c32_target_met"] = target["c32_share_of_model_only_batch32"] >= 0.8
        if 1 in on:
            target["c1_p50_over_paced_batch1_plus_search"] = on[1]["p50_ms"] / (ref["batch1_paced_ms"] + ref["search_ms"])
            target["c1_target_met"] = target["c1_p50_over_paced_batch1_plus_search"] <= 1.3
            target["c1_p50_over_paced_batch1_then_search"] = on[1]["p50_ms"] / ref["batch1_paced_then_search_ms"]
        out.append(target)
    return out


def render(report: dict) -> str:
    settings = report["settings"]
    gallery = next(iter(report["model_only"].values()))["gallery_items"]
    lines = [f"Serve load: gallery {gallery} items, k={K}, max batch {settings['max_batch']}, max delay "
             f"{settings['max_delay_ms']} ms, instances {', '.join(map(str, settings['instances']))} (0: one "
             "one-thread lane per core where the runtime has lanes)",
             f"Machine: {report['machine']}", f"Command: {report['command']}", "",
             "Model-only reference (same run; batch 1 paced: after a "
             f"{PACE_S * 1e3:.0f} ms pause, as a lone client's requests reach the model):", "",
             "| model | runtime | batch 1 ms | batch 1 paced ms | batch 32 img/s | search ms | search after a call ms | "
             "paced call then search ms |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model, ref in report["model_only"].items():
        lines.append(f"| {model} | {ref['runtime']} | {ref['batch1_ms']:.2f} | {ref['batch1_paced_ms']:.2f} | "
                     f"{ref['batch32_images_per_sec']:.1f} | {ref['search_ms']:.2f} | {ref['search_after_call_ms']:.2f} | "
                     f"{ref['batch1_paced_then_search_ms']:.2f} |")
    lines += ["", "The service without HTTP (same run: asyncio callers of ReidService.search in one process):", ""]
    for ip in report["in_process"]:
        lines.append(f"- {ip['model']}, {ip['instances']} instance(s), {ip['concurrency']} callers: "
                     f"{ip['requests_per_sec']:.1f} req/s")
    lines += ["",
              f"Load generator: {settings['client']} (CPU columns: per request, server process and load generator, "
              "which share the machine)", "",
              "| model | instances | batching | concurrency | req/s | p50 ms | p99 ms | errors | server CPU ms | "
              "client CPU ms |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['instances']} | {r['batching']} | {r['concurrency']} | "
                     f"{r['requests_per_sec']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
                     f"{r['server_cpu_ms_per_request']:.1f} | {r['client_cpu_ms_per_request']:.1f} |")
    lines.append("")
    for t in report["targets"]:
        where = f"{t['model']}, instances {t['instances']}, batching on"
        if "c32_share_of_model_only_batch32" in t:
            lines.append(f"- {where}: concurrency 32 delivers {100 * t['c32_share_of_model_only_batch32']:.0f}% of "
                         f"model-only batch-32 img/s (target >= 80%: {'met' if t['c32_target_met'] else 'NOT met'})")
        if "c1_p50_over_paced_batch1_plus_search" in t:
            lines.append(f"- {where}: concurrency 1 p50 = {t['c1_p50_over_paced_batch1_plus_search']:.2f} x (model-only "
                         f"batch 1 paced + search) (target <= 1.3x: {'met' if t['c1_target_met'] else 'NOT met'}); "
                         f"{t['c1_p50_over_paced_batch1_then_search']:.2f} x a paced call then its search, in sequence")
    return "\n".join(lines) + "\n"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine() -> str:
    """lscpu's model name (the CPU the numbers belong to), the CPU count and Python."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.SubprocessError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"lscpu model name {model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _search_time(gallery_dir: Path, query: np.ndarray, runtime, x: np.ndarray) -> dict:
    """The median time of one exact top-k search, with numpy's BLAS at one thread as the service runs it; and of
    a paced batch-1 call followed at once by its search, on one thread, as the service's inference thread runs a
    lone request (the model's call leaves the gallery out of the caches, so that search costs more)."""
    with Gallery.open(gallery_dir) as g, threadpool_limits(limits=1, user_api="blas"):
        store = EmbeddedStore()
        store.sync(g.ids, g.embeddings, g.camids())
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            store.search(query, K)
            times.append(time.perf_counter() - t0)
        in_sequence, after_call = [], []
        for _ in range(100):
            time.sleep(PACE_S)
            t0 = time.perf_counter()
            embedding = runtime.infer(x)["embedding"]
            t1 = time.perf_counter()
            store.search(embedding, K)
            in_sequence.append(time.perf_counter() - t0)
            after_call.append(time.perf_counter() - t1)
        return {"search_ms": statistics.median(times) * 1e3, "gallery_items": len(g),
                "search_after_call_ms": statistics.median(after_call) * 1e3,
                "batch1_paced_then_search_ms": statistics.median(in_sequence) * 1e3}


if __name__ == "__main__":
    main()
