"""Prometheus metrics of the service (`GET /metrics`), in a registry of its own per app.

`reid_requests_total{endpoint,status}`, `reid_request_seconds{endpoint}` (histogram),
`reid_batch_images{instance}` (images per runtime call, histogram), `reid_inference_seconds{instance}` (per
runtime call; `instance` is `infer`, the all-core instance, or `lane0`, `lane1`, ...),
`reid_queue_images` (images waiting for the runtime), `reid_requests_in_flight`, `reid_gallery_items`.
prometheus-client is imported here only (`pip install "reid-export[serve]"`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ReidExportError

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self, queue_depth: Callable[[], float], gallery_size: Callable[[], float]):
        try:
            import prometheus_client as prom
        except ImportError as e:
            raise ReidExportError('the service needs prometheus-client: pip install "reid-export[serve]"') from e
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter("reid_requests", "HTTP requests answered", ["endpoint", "status"],
                                     registry=self.registry)
        self.latency = prom.Histogram("reid_request_seconds", "Time to answer a request", ["endpoint"],
                                      buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch = prom.Histogram("reid_batch_images", "Images per runtime call", ["instance"], buckets=_BATCH_BUCKETS,
                                    registry=self.registry)
        self.inference = prom.Histogram("reid_inference_seconds", "Time of one runtime call (normalise + infer)", ["instance"],
                                        buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = prom.Gauge("reid_requests_in_flight", "Requests being received or answered",
                                    registry=self.registry)
        queue = prom.Gauge("reid_queue_images", "Images waiting for the runtime", registry=self.registry)
        queue.set_function(queue_depth)
        gallery = prom.Gauge("reid_gallery_items", "Items in the gallery", registry=self.registry)
        gallery.set_function(gallery_size)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def observe_batch(self, images: int, seconds: float, instance: str = "infer") -> None:
        self.batch.labels(instance=instance).observe(images)
        self.inference.labels(instance=instance).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
