"""Dynamic batching: one worker thread owns the model; it merges queued requests with equal
decoding settings into one ``Translator.search`` call. Beam and greedy search do not depend on the
batch (tests/test_search.py), so each request gets what it would get alone; sampled requests are
never merged, so a seed reproduces its sample."""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from typing import Any, Iterator, Optional

import torch

from transduce.serve.metrics import Metrics


@dataclasses.dataclass
class Job:
    """One request's sentences, waiting for the worker."""
    texts: list[str]
    options: dict[str, Any]  # keyword arguments of Translator.search, all resolved
    attention: bool
    key: Optional[tuple]  # jobs with equal keys may share a batch; None: decoded alone
    future: concurrent.futures.Future
    arrived: float


class Overloaded(Exception):
    """The queue is full: more than ``max_queue`` sentences would be waiting."""


class Batcher:
    """Queue of translation jobs and the worker thread that decodes them, merged when allowed
    (``merge=False``: each alone, in arrival order); ``metrics`` records batches and the queue."""

    def __init__(self, translator, metrics: Metrics, *, max_batch_size: int, max_wait_ms: float,
                 max_queue: int, merge: bool):
        self.translator, self.metrics = translator, metrics
        self.max_batch_size, self.max_wait_ms = max_batch_size, max_wait_ms
        self.max_queue, self.merge = max_queue, merge
        self.pending: collections.deque[Job] = collections.deque()
        self.queued = 0  # sentences waiting for the worker
        self.cond = threading.Condition()
        self.closed = False
        self.thread: threading.Thread | None = None
        self.torch_threads = torch.get_num_threads()  # the worker uses the creator's setting
        self.inflight = 0  # requests inside the server (being read, queued or decoded)
        metrics.queue.set_function(lambda: self.queued)

    def start(self) -> None:
        """Starts the worker thread (again, after :meth:`close`); a no-op while it runs."""
        with self.cond:
            self.closed = False
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="transduce-decoder",
                                               daemon=True)
                self.thread.start()

    def close(self) -> None:
        """Decodes what is queued, then stops the worker."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout=30)

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Marks a request as inside the server, so the worker knows whether to wait for it."""
        with self.cond:
            self.inflight += 1
        try:
            yield
        finally:
            with self.cond:
                self.inflight -= 1

    def submit(self, texts: list[str], options: dict[str, Any],
               attention: bool) -> concurrent.futures.Future:
        """Queues ``texts``; the future gets their n-best lists. Raises :class:`Overloaded`."""
        mergeable = (self.merge and not options.get("sampling")  # per-input controls: alone
                     and not any(k in options for k in ("prefix", "constraints")))
        key = tuple(sorted(options.items())) if mergeable else None
        job = Job(texts, options, attention, key, concurrent.futures.Future(), time.monotonic())
        self.start()
        with self.cond:
            if self.queued + len(texts) > self.max_queue:
                raise Overloaded
            self.pending.append(job)
            self.queued += len(texts)
            self.cond.notify_all()
        return job.future

    def _next_batch(self) -> list[Job] | None:
        """The oldest job plus the queued jobs that may join it, waiting up to max_wait_ms after
        it arrived -- but not at all when no other request is inside the server (a lone client
        gets the latency of unbatched decoding). None once closed and empty."""
        with self.cond:
            while not self.pending and not self.closed:
                self.cond.wait()
            if not self.pending:
                return None
            first = self.pending.popleft()
            batch, size = [first], len(first.texts)
            deadline = first.arrived + self.max_wait_ms / 1000
            while first.key is not None and size < self.max_batch_size:
                for job in list(self.pending):
                    if job.key == first.key and size + len(job.texts) <= self.max_batch_size:
                        self.pending.remove(job)
                        batch.append(job)
                        size += len(job.texts)
                remaining = deadline - time.monotonic()
                if (size >= self.max_batch_size or remaining <= 0 or self.closed
                        or self.inflight <= len(batch)):
                    break
                self.cond.wait(remaining)
            self.queued -= size
            return batch

    def _loop(self) -> None:
        torch.set_num_threads(self.torch_threads)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            # a request whose client went away is dropped; the rest can no longer be cancelled
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            texts = [t for job in batch for t in job.texts]
            options = {**batch[0].options, "batch_size": max(1, len(texts))}  # one decoder batch
            start = time.perf_counter()
            try:
                results = self.translator.search(
                    texts, attention=any(job.attention for job in batch), **options)
            except BaseException as e:  # handed to each waiting request
                for job in batch:
                    job.future.set_exception(e)
                continue
            self.metrics.batch(len(texts), len(batch), time.perf_counter() - start)
            for job in batch:
                job.future.set_result(results[:len(job.texts)])
                results = results[len(job.texts):]
