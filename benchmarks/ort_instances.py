"""ONNX Runtime on CPU: one session using every core against one one-thread session per core, alone and with
Python work on the same cores (what a service's event loop does). The measurement behind `serve --instances`.

    python benchmarks/ort_instances.py runs/demo/model.onnx [--seconds 3] [--python-load 0.3]

Prints images/s for: one session with N intra-op threads at batch 16 and 32 (spinning on, as the bench runs
it, and off); N one-thread sessions called from N threads at once, batch 8, 16 and 32 each; and the same with
a Python thread busy for `--python-load` of one core, in 2 ms slices. N is the number of cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import numpy as np


def _session(path: str, threads: int, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _input(session, batch: int) -> dict:
    spec = session.get_inputs()[0]
    shape = [batch] + [d if isinstance(d, int) else 1 for d in spec.shape[1:]]
    return {spec.name: np.random.default_rng(0).random(shape, dtype=np.float32)}


def one_session(session, batch: int, seconds: float) -> float:
    feed = _input(session, batch)
    for _ in range(2):
        session.run(None, feed)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def parallel_sessions(sessions, batch: int, seconds: float) -> float:
    feeds = [_input(s, batch) for s in sessions]
    for s, f in zip(sessions, feeds):
        s.run(None, f)
    done = [0] * len(sessions)

    def work(i: int) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            sessions[i].run(None, feeds[i])
            done[i] += batch

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sessions))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an ONNX file exported by reid-export")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--python-load", type=float, default=0.3, help="share of one core the Python thread takes")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    stop = threading.Event()

    def python_load(duty: float) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.002 * duty:
                pass
            time.sleep(0.002 * (1 - duty))

    for duty in (0.0, args.python_load):
        stop.clear()
        loader = threading.Thread(target=python_load, args=(duty,), daemon=True) if duty else None
        if loader:
            loader.start()
        print(f"-- Python load: {duty:.0%} of one core; {cores} cores")
        for spinning in (True, False):
            s = _session(args.model, cores, spinning)
            rates = ", ".join(f"batch {b} {one_session(s, b, args.seconds):.0f} img/s" for b in (16, 32))
            print(f"1 session x {cores} threads (spinning {'on' if spinning else 'off'}): {rates}")
        lanes = [_session(args.model, 1, False) for _ in range(cores)]
        rates = ", ".join(f"batch {b} {parallel_sessions(lanes, b, args.seconds):.0f} img/s" for b in (8, 16, 32))
        print(f"{cores} sessions x 1 thread, in parallel: {rates}")
        stop.set()
        if loader:
            loader.join()


if __name__ == "__main__":
    main()
