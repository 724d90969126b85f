"""Prometheus metrics of the service, served at ``/metrics`` in the text format.

* ``portal_http_requests_total{endpoint, method, status}`` and
  ``portal_http_request_duration_seconds{endpoint}``: every request, by route name (the
  ``operationId`` of the OpenAPI document; ``unmatched`` for paths no route serves);
* ``portal_kms_call_duration_seconds{operation}``: the KMS calls of the custodian and the
  enclave (``seal``, ``open``, ...). A seal or open reaches the HSM when it needs a new
  intermediate key or one not in the cache; the histogram shows both kinds of call;
* ``portal_flows_total{flow, result}``: key generations, backups and recoveries
  ``completed``, and sessions that ended without completing (``failed``), as the custodian
  reports them (its ``events`` hook).

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before
the workers start (``portal-core serve`` does): each worker writes its values there and a
scrape of any worker sums them all.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["CONTENT_TYPE", "Metrics", "TimedKms"]

# The text exposition format's media type (prometheus_client.CONTENT_TYPE_LATEST).
CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_KMS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0)


class Metrics:
    """The service's metrics, in a registry of their own (so several apps in one process,
    as in the tests, do not collide).

    prometheus_client is imported here, not with the module: it decides when first
    imported whether values go to ``PROMETHEUS_MULTIPROC_DIR``, which ``portal-core serve``
    sets first."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "portal_http_requests_total",
            "HTTP requests by route, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "portal_http_request_duration_seconds",
            "Seconds from a request's first byte in to its response's last byte out.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.kms = Histogram(
            "portal_kms_call_duration_seconds",
            "Seconds per KMS call (seal, open, ...), HSM round trips included.",
            ["operation"],
            buckets=_KMS_BUCKETS,
            registry=self.registry,
        )
        self.flows = Counter(
            "portal_flows_total",
            "Key generations, backups and recoveries completed, and sessions failed.",
            ["flow", "result"],
            registry=self.registry,
        )

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def flow_event(self, event: str) -> None:
        """The custodian's ``events`` hook: ``"<flow>.completed"`` or ``"<flow>.failed"``."""
        flow, _, outcome = event.rpartition(".")
        self.flows.labels(flow, outcome).inc()

    def render(self) -> bytes:
        """The text exposition: this process's values, or with ``PROMETHEUS_MULTIPROC_DIR``
        set, every worker's."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class TimedKms:
    """A KMS whose calls are timed into :attr:`Metrics.kms`; everything else passes through."""

    def __init__(self, kms: Any, metrics: Metrics) -> None:
        self._kms = kms
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"TimedKms({self._kms!r})"

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._kms, name)
        if name.startswith("_") or not callable(value):
            return value
        histogram = self._metrics.kms.labels(name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - t0)

        return timed
