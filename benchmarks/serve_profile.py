"""Where a lone request's time goes on the service's event loop: the app under uvicorn in this process with cProfile
on the loop's thread, while a client process sends `N` POST /v1/search one after another (concurrency 1, the raw
keep-alive client of serve_load.py).

    python benchmarks/serve_profile.py --model runs/demo/model.onnx --gallery runs/gallery \\
        --queries runs/demo/data/query --requests 300 --clock cpu

`--clock cpu` times the loop thread's CPU (`time.thread_time`): what each part costs the loop, whatever else
runs on the machine; `--clock wall` adds the time the thread waited (descheduled, or for a lock). Prints the
functions by cumulative and by own time; the client's latency line comes first.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

CLIENT = """
import asyncio, sys, time
sys.path.insert(0, {bench!r})
import httpx, serve_load
from reid_export.serve.indexing import collect_images
url = {url!r}
while True:
    try:
        if httpx.get(url + '/readyz', timeout=1).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.2)
bodies = [(f.path.name, f.path.read_bytes()) for f in collect_images({queries!r})][:64]
print('client:', asyncio.run(serve_load.load_raw(url, bodies, 1, {requests})))
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="PATH or RUNTIME=PATH (the gallery's model)")
    parser.add_argument("--gallery", required=True, type=Path)
    parser.add_argument("--queries", required=True, type=Path, help="folder of query crops")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--top", type=int, default=40, help="functions printed per ordering")
    args = parser.parse_args(argv)
    import uvicorn  # lazy: the serve extra

    from reid_export.serve.app import create_app
    from reid_export.serve.http_limits import head_timeout_protocol
    from reid_export.serve.service import ServeSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeSettings(model=args.model, gallery=args.gallery, port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           http=head_timeout_protocol(20.0), server_header=False))
    client = CLIENT.format(bench=str(Path(__file__).parent), url=f"http://127.0.0.1:{port}",
                           queries=str(args.queries), requests=args.requests)

    def load() -> None:
        try:
            done = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, timeout=3600)
            print(done.stdout.strip() or done.stderr[-2000:], flush=True)
        finally:
            server.should_exit = True

    threading.Thread(target=load, daemon=True).start()
    profiler = cProfile.Profile(time.thread_time) if args.clock == "cpu" else cProfile.Profile()
    profiler.enable()
    server.run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"event-loop thread, {args.clock} clock, {args.requests} requests (divide by it for per-request times)")
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
