"""The server's Prometheus metrics (``GET /metrics``) and the ASGI middleware that counts and
times every request."""
from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from transduce.serve.requests import ApiError

log = logging.getLogger("transduce.serve")

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests, errors, latency, batch sizes and queue length, in a registry of their own (not
    prometheus_client's global one: several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("transduce_requests_total", "HTTP requests by endpoint and status.",
                                ["endpoint", "status"], registry=r)
        self.errors = Counter("transduce_errors_total", "Requests answered with an error, by type.",
                              ["endpoint", "error"], registry=r)
        self.latency = Histogram("transduce_request_duration_seconds", "Time to answer a request.",
                                 ["endpoint"], buckets=LATENCY, registry=r)
        self.batch_sentences = Histogram("transduce_batch_size_sentences",
                                         "Sentences per decoder batch.", buckets=SIZES, registry=r)
        self.batch_requests = Histogram("transduce_batch_size_requests",
                                        "Requests merged into one decoder batch.", buckets=SIZES,
                                        registry=r)
        self.decode_seconds = Histogram("transduce_decode_seconds", "Time to decode one batch.",
                                        buckets=LATENCY, registry=r)
        self.sentences = Counter("transduce_sentences_total", "Sentences decoded.", registry=r)
        self.queue = Gauge("transduce_queue_sentences", "Sentences waiting to be decoded.",
                           registry=r)  # the batcher makes it read its queue

    def batch(self, sentences: int, requests: int, seconds: float) -> None:
        """Records one decoder batch."""
        self.batch_sentences.observe(sentences)
        self.batch_requests.observe(requests)
        self.decode_seconds.observe(seconds)
        self.sentences.inc(sentences)


class MeasureMiddleware:
    """Counts and times every request; answers JSON 500 for an exception nothing else handled.
    Plain ASGI (not ``@app.middleware``): it adds almost nothing to a request's cost."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status, error, started = 500, "internal_error", False

        async def send_and_watch(message):
            nonlocal status, error, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                headers = dict(message.get("headers", ()))
                error = (headers.get(b"x-transduce-error", f"http_{status}".encode()).decode()
                         if status >= 400 else None)
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:  # a bug: log it, and still answer JSON if nothing was sent yet
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await ApiError(500, "internal_error", "internal server error").response()(
                    scope, receive, send_and_watch)
        finally:
            endpoint = getattr(scope.get("route"), "path", "other")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            if error:
                self.metrics.errors.labels(endpoint, error).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
