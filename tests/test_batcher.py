"""The dynamic-batching worker on its own, with a fake translator: which jobs share a decoder
call, sampled jobs never merged, the batch size cap, overload, errors, cancellation, shutdown.

The fake translator can hold its first call open (``gate``), so the jobs submitted meanwhile are
all queued when the worker next looks: the batches are then fixed, not a matter of timing."""
from __future__ import annotations

import threading

import pytest

from transduce.serve.batcher import Batcher, Overloaded
from transduce.serve.metrics import Metrics

BEAM = {"beam_size": 3, "sampling": False}
SAMPLE = {"beam_size": 1, "sampling": True, "seed": 7}
TIMEOUT = 10


class FakeTranslator:
    """Records each search call; "x" -> "x!"; the input "boom" raises."""

    def __init__(self):
        self.calls: list[tuple[list[str], dict, bool]] = []
        self.entered, self.gate = threading.Event(), threading.Event()
        self.gate.set()

    def search(self, texts, attention=False, **options):
        self.entered.set()
        assert self.gate.wait(TIMEOUT)
        self.calls.append((list(texts), options, attention))
        if "boom" in texts:
            raise RuntimeError("boom")
        return [[t + "!"] for t in texts]


@pytest.fixture
def fake():
    return FakeTranslator()


def make(fake, **kw) -> Batcher:
    kw = {"max_batch_size": 64, "max_wait_ms": 60_000, "max_queue": 100, "merge": True, **kw}
    return Batcher(fake, Metrics(), **kw)


def sample(batcher: Batcher, name: str) -> float:
    return batcher.metrics.registry.get_sample_value(name)


def hold_first_call(fake, batcher: Batcher):
    """Submits a first job and returns once the worker is inside its search call."""
    fake.gate.clear()
    future = batcher.submit(["first"], BEAM, False)
    assert fake.entered.wait(TIMEOUT)
    return future


def texts_per_call(fake) -> list[list[str]]:
    return [texts for texts, _, _ in fake.calls]


def test_queued_jobs_with_equal_settings_share_one_call(fake):
    b = make(fake)
    hold_first_call(fake, b)
    futures = [b.submit(t, BEAM, att) for t, att in ((["a", "b"], False), (["c"], True))]
    other = b.submit(["d"], {**BEAM, "beam_size": 5}, False)
    fake.gate.set()
    assert [f.result(TIMEOUT) for f in futures] == [[["a!"], ["b!"]], [["c!"]]]
    assert other.result(TIMEOUT) == [["d!"]]
    b.close()
    assert texts_per_call(fake) == [["first"], ["a", "b", "c"], ["d"]]
    texts, options, attention = fake.calls[1]
    assert options == {**BEAM, "batch_size": 3} and attention  # one decoder batch; any attention
    assert sample(b, "transduce_batch_size_requests_count") == 3
    assert sample(b, "transduce_batch_size_requests_sum") == 4
    assert sample(b, "transduce_sentences_total") == 5


def test_sampled_jobs_are_never_merged(fake):
    b = make(fake)
    hold_first_call(fake, b)
    futures = [b.submit([t], SAMPLE, False) for t in "abc"]
    fake.gate.set()
    assert [f.result(TIMEOUT) for f in futures] == [[["a!"]], [["b!"]], [["c!"]]]
    b.close()
    assert texts_per_call(fake) == [["first"], ["a"], ["b"], ["c"]]


def test_merge_off_decodes_each_job_alone_in_order(fake):
    b = make(fake, merge=False)
    hold_first_call(fake, b)
    futures = [b.submit([t], BEAM, False) for t in "abc"]
    fake.gate.set()
    for f in futures:
        f.result(TIMEOUT)
    b.close()
    assert texts_per_call(fake) == [["first"], ["a"], ["b"], ["c"]]


def test_max_batch_size_caps_a_batch_and_later_jobs_may_fill_it(fake):
    b = make(fake, max_batch_size=3)
    hold_first_call(fake, b)
    futures = [b.submit(t, BEAM, False) for t in (["a", "b"], ["c", "d"], ["e"])]
    fake.gate.set()
    for f in futures:
        f.result(TIMEOUT)
    b.close()
    assert texts_per_call(fake) == [["first"], ["a", "b", "e"], ["c", "d"]]


def test_a_lone_request_does_not_wait_but_company_is_waited_for(fake):
    b = make(fake)  # waits up to 60 s for company
    with b.request():
        assert b.submit(["alone"], BEAM, False).result(TIMEOUT) == [["alone!"]]
    with b.request(), b.request():  # two requests inside the server: the first waits for the other
        first = b.submit(["a"], BEAM, False)
        second = b.submit(["b"], BEAM, False)
        assert first.result(TIMEOUT) == [["a!"]] and second.result(TIMEOUT) == [["b!"]]
    b.close()
    assert texts_per_call(fake) == [["alone"], ["a", "b"]]


def test_a_full_queue_refuses_more(fake):
    b = make(fake, max_queue=2)
    hold_first_call(fake, b)
    waiting = b.submit(["a", "b"], BEAM, False)
    assert sample(b, "transduce_queue_sentences") == 2
    with pytest.raises(Overloaded):
        b.submit(["c"], BEAM, False)
    fake.gate.set()
    assert waiting.result(TIMEOUT) == [["a!"], ["b!"]]
    assert sample(b, "transduce_queue_sentences") == 0
    assert b.submit(["c"], BEAM, False).result(TIMEOUT) == [["c!"]]
    b.close()


def test_an_error_reaches_every_job_of_its_batch_and_the_worker_goes_on(fake):
    b = make(fake)
    hold_first_call(fake, b)
    futures = [b.submit([t], BEAM, False) for t in ("boom", "fine")]
    fake.gate.set()
    for f in futures:
        with pytest.raises(RuntimeError, match="boom"):
            f.result(TIMEOUT)
    assert b.submit(["after"], BEAM, False).result(TIMEOUT) == [["after!"]]
    b.close()


def test_a_cancelled_job_is_not_decoded(fake):
    b = make(fake)
    hold_first_call(fake, b)
    gone = b.submit(["gone"], BEAM, False)
    assert gone.cancel()  # its client went away while it was queued
    fake.gate.set()
    assert b.submit(["kept"], BEAM, False).result(TIMEOUT) == [["kept!"]]
    b.close()
    assert texts_per_call(fake) == [["first"], ["kept"]]


def test_close_decodes_what_is_queued_then_stops_and_a_submit_restarts(fake):
    b = make(fake)
    hold_first_call(fake, b)
    queued = b.submit(["queued"], BEAM, False)
    closer = threading.Thread(target=b.close)
    closer.start()
    fake.gate.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive() and not b.thread.is_alive()
    assert queued.result(0) == [["queued!"]]
    assert b.submit(["again"], BEAM, False).result(TIMEOUT) == [["again!"]]
    b.close()
