"""`reid-export index build | add | migrate --engine ray`: decoding and embedding as a Ray Data pipeline.

    with RayEngine(RaySettings(actors=2)) as engine:      # a local Ray, or RaySettings(address="HOST:6379")
        build_gallery("Market/bounding_box_test", "engines/model.onnx", "runs/gallery", engine=engine)

The image paths become a Ray dataset; `map_batches` runs them through a pool of actors (`_EmbedActor`), each
holding one `Runtime` of the same artefact (`runtimes.make_runtime`, one intra-op thread by default), which
reads, hashes, decodes and embeds its batch. The results stream back to this process in the order given and
are written here, by the same commits as the local engine (`indexing.add_results`): Ray only computes.

Ray is imported only when an engine starts (its import and start-up take seconds): `pip install
"reid-export[ray]"`. A local Ray gets this machine's cores, no dashboard and no log forwarding, and is shut
down at the end; `address` joins a running cluster instead (whose workers need reid-export installed and the
image and model paths readable).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReidExportError
from ..images import decode_readable
from ..options import whole
from ..runtimes import Runtime, capabilities, make_runtime
from .indexing import Embedded, ImageFile, embed_arrays, named_bytes, read_file

__all__ = ["RayEngine", "RaySettings"]

_OUTPUTS = ("embedding", "attributes")  # what a runtime returns (`Runtime.infer`); each travels as float32 bytes


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # a running cluster to join (HOST:PORT, ray://HOST:10001, auto); None: a local Ray
    actors: int = 0  # embedding actors; 0: one per `threads` CPUs of the cluster (a local one: this machine's cores)
    threads: int = 1  # intra-op threads of each actor's runtime (and the CPUs each actor reserves)

    def __post_init__(self) -> None:
        whole(self.actors, "--actors", low=0, high=100_000)
        whole(self.threads, "--threads", low=1, high=1024)


class RayEngine:
    """An `indexing.Engine` on Ray; a context manager that starts (or joins) Ray and shuts it down."""
    name = "ray"

    def __init__(self, settings: RaySettings | None = None):
        self.settings = settings or RaySettings()
        self._ray = None
        self._order = None  # the Ray Data preserve_order setting to restore

    def __enter__(self) -> "RayEngine":
        try:  # lazy: Ray's import and start take seconds, and it is an optional extra
            import ray
            import ray.data
        except ImportError as e:
            raise ReidExportError('--engine ray needs Ray Data: pip install "reid-export[ray]" (or use the default '
                                  '--engine local)') from e
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-run banners or progress-bar notices
        options = {"address": self.settings.address} if self.settings.address else \
            {"num_cpus": _cores(), "include_dashboard": False}
        try:
            ray.init(logging_level=logging.ERROR, log_to_driver=False, **options)
        except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError, ...
            where = f"join the Ray cluster at {self.settings.address}" if self.settings.address else "start Ray"
            raise ReidExportError(f"--engine ray: cannot {where} ({type(e).__name__}: {e}); check --address "
                                  "(HOST:6379 of a head started with `ray start --head`), or leave it out for a "
                                  "local Ray") from e
        self._ray = ray
        context = ray.data.DataContext.get_current()
        self._order = context.execution_options.preserve_order
        context.execution_options.preserve_order = True  # results in the order given: commits match the local engine
        return self

    def __exit__(self, *exc) -> None:
        if self._ray is not None:
            self._ray.data.DataContext.get_current().execution_options.preserve_order = self._order
            self._ray.shutdown()
            self._ray = None

    def actors(self) -> int:
        """The actor pool's size: `actors`, or one per `threads` CPUs of the cluster."""
        if self.settings.actors:
            return self.settings.actors
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)) // self.settings.threads)

    def results(self, runtime: Runtime, files: list[ImageFile], known: set[str] | None, *, batch_size: int,
                chunk: int) -> Iterator[Embedded]:
        """`indexing.Engine.results` on the actor pool. With a non-empty `known` (an add to a gallery), the files
        are hashed here first so that those already in it are neither sent nor embedded (read twice, then)."""
        if self._ray is None:
            raise ReidExportError("RayEngine.results: use the engine as a context manager (`with RayEngine() as "
                                  "engine:`), which starts Ray")
        skipped = {i for i, f in enumerate(files) if known and read_file(f).sha256 in known}
        todo = [i for i in range(len(files)) if i not in skipped]
        done: dict[int, Embedded] = {}
        rows = iter(self._embedded_rows(runtime, files, todo, batch_size)) if todo else iter(())
        for i, f in enumerate(files):
            if i in skipped:
                yield Embedded(f, known=True)
                continue
            while i not in done:  # in order already (preserve_order); kept by row in any case
                row, embedded = next(rows)
                done[row] = embedded
            yield done.pop(i)

    def _embedded_rows(self, runtime: Runtime, files: list[ImageFile], todo: list[int],
                       batch_size: int) -> Iterator[tuple[int, Embedded]]:
        ray = self._ray
        artefact = runtime.artefact
        if not isinstance(artefact, (str, Path)):
            raise ReidExportError(f"--engine ray: the {runtime.name} runtime runs a model in memory; the actors load "
                                  "a model file: give --model PATH")
        dataset = ray.data.from_items([{"row": i, "path": str(files[i].path)} for i in todo])
        with warnings.catch_warnings():  # max_restarts as a plain remote argument is deprecated, still the way
            warnings.simplefilter("ignore")
            dataset = dataset.map_batches(
                _EmbedActor, batch_size=batch_size, batch_format="numpy",
                fn_constructor_kwargs={"runtime": runtime.name, "artefact": str(artefact),
                                       "threads": self.settings.threads},
                compute=ray.data.ActorPoolStrategy(size=min(self.actors(), len(todo))),
                num_cpus=self.settings.threads, max_restarts=0)  # a model that fails to load fails the command
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for j, row in enumerate(batch["row"].tolist()):
                    f, reason = files[row], str(batch["reason"][j])
                    outputs = {key: np.frombuffer(batch[key][j], np.float32) for key in _OUTPUTS if len(batch[key][j])}
                    yield row, (Embedded(f, reason=reason) if reason else
                                Embedded(f, data=bytes(batch["data"][j]), sha256=str(batch["sha256"][j]),
                                         outputs=outputs))
        except ReidExportError:
            raise
        except Exception as e:  # noqa: BLE001 - an actor's error arrives as Ray's RayTaskError / ActorDiedError
            raise ReidExportError(f"--engine ray: the embedding pipeline failed ({type(e).__name__}: "
                                  f"{str(e).strip().splitlines()[-1][:500] if str(e).strip() else e!r}); "
                                  "run the same command with --engine local to see the error of one process") from e


class _EmbedActor:
    """One actor of the pool: a runtime of the artefact; a batch of paths in, bytes, sha256 and outputs out."""

    def __init__(self, runtime: str, artefact: str, threads: int):
        options = {"threads": threads} if "threads" in capabilities(runtime).options else {}
        self.runtime = make_runtime(runtime, artefact, **options).activate()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        read = [read_file(ImageFile(Path(p))) for p in batch["path"]]
        fresh = [i for i, r in enumerate(read) if not r.reason]
        pixels, failed = decode_readable([named_bytes(read[i].file, read[i].data) for i in fresh],
                                         self.runtime.contract, threads=1, progress=False)
        for k, why in failed:
            read[fresh[k]].reason = why
        decoded = [i for i in fresh if not read[i].reason]
        out = {"row": batch["row"], "reason": np.array([r.reason for r in read], dtype=object),
               "sha256": np.array([r.sha256 for r in read], dtype=object),
               "data": np.array([r.data if not r.reason else b"" for r in read], dtype=object)}
        outputs = embed_arrays(self.runtime, pixels, batch_size=len(pixels)) if decoded else {}
        for key in _OUTPUTS:  # bytes per row, empty where undecodable or absent: the same columns in every batch
            column = np.full(len(read), b"", dtype=object)
            for row, value in zip(decoded, outputs.get(key, ())):
                column[row] = np.ascontiguousarray(value, np.float32).tobytes()
            out[key] = column
        return out


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

