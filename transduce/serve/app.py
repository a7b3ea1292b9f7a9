"""The HTTP API and web page of ``transduce serve``.

Endpoints (every error answers JSON ``{"error": type, "message": text, "details": [...]}``)::

    GET  /                    web page (package files only: index.html, app.js, style.css)
    POST /translate           {"text": ["..."], "beam_size": 5, ...} -> {"translations": ["..."]}
         ?attention=true      adds "attention": per input {"matrix", "src_tokens", "tgt_tokens"}
                              (+ "copy": per output token, the probability it was copied)
    GET  /health              {"status": "ok", "model": {...}, "decoding": {...}, "limits": {...}}
    GET  /metrics             Prometheus text: requests, errors, latency, batch sizes, queue

Decoding runs on one worker thread, never on the event loop. The worker gathers requests that
share their decoding settings into one decoder batch (dynamic batching: up to ``max_batch_size``
sentences, waiting at most ``max_wait_ms`` after the oldest request arrived). Beam search and
greedy search do not depend on the batch (tests/test_search.py), so each request gets exactly what
it would get alone; sampled requests are never merged, so a seed reproduces its sample.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import sys
import threading
import time
from importlib import resources
from typing import Any, Optional

import torch

from transduce.errors import TransduceError

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, ValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as e:  # pragma: no cover - depends on the environment
    raise TransduceError(f"transduce serve needs FastAPI and uvicorn ({e.name} is missing): "
                         "pip install 'transduce[serve]'") from e

log = logging.getLogger("transduce.serve")

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {  # the page may load nothing from anywhere but this server
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how the worker batches."""
    max_inputs: int = 32  # inputs per request
    max_chars: int = 1000  # characters per input
    max_body_bytes: int = 1_000_000
    max_beam_size: int = 16
    max_len: int = 256  # output tokens per input (also caps the config's a * src_len + b)
    max_batch_size: int = 64  # sentences per decoder batch
    max_wait_ms: float = 5.0  # how long the oldest request waits for others to join its batch
    max_queue: int = 1024  # sentences waiting; more answers 503
    batching: bool = True  # False: each request is decoded alone, one after another


class TranslateRequest(BaseModel):
    """The body of ``POST /translate``. Unset settings come from the model's ``decoding`` config."""
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    text: list[str]
    beam_size: Optional[int] = Field(None, ge=1)
    n_best: int = Field(1, ge=1)
    max_len: Optional[int] = Field(None, ge=1)
    sampling: Optional[bool] = None
    temperature: Optional[float] = Field(None, ge=0.01, le=100)
    top_k: Optional[int] = Field(None, ge=0, le=100_000)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    length_penalty: Optional[float] = Field(None, ge=0, le=10)
    no_repeat_ngram_size: Optional[int] = Field(None, ge=0, le=100)
    seed: Optional[int] = Field(None, ge=0, le=2**63 - 1)


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, details: list | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.details, self.headers = details or [], headers


class SafeJSONResponse(JSONResponse):
    """JSON that any string can go through: UTF-8, or ASCII escapes if a string holds a lone
    surrogate (a client can send one, e.g. as an unknown field's name, and it may be echoed)."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(status: int, kind: str, message: str, details: list | None = None,
                   headers: dict | None = None) -> SafeJSONResponse:
    headers = {**(headers or {}), "X-Transduce-Error": kind}  # read by the metrics middleware
    return SafeJSONResponse({"error": kind, "message": message, "details": details or []},
                            status_code=status, headers=headers)


def _pydantic_details(errors: list[dict]) -> list[dict]:
    """Field path and message only: never echo the offending input back."""
    return [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
             "msg": str(e.get("msg", ""))} for e in errors]


# ---------------------------------------------------------------------------------------------
# Metrics: a few counters and histograms, written out in the Prometheus text format.

class Histogram:
    def __init__(self, buckets: list[float]):
        self.buckets, self.counts = buckets, [0] * (len(buckets) + 1)
        self.sum, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, total = [], 0
        for bound, n in zip(self.buckets + [math.inf], self.counts):
            total += n
            le = "+Inf" if bound == math.inf else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {total}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {self.sum:.6f}", f"{name}_count{braces} {self.count}"]
        return out


class Metrics:
    LATENCY = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: collections.Counter = collections.Counter()  # (endpoint, status)
        self.errors: collections.Counter = collections.Counter()  # (endpoint, error type)
        self.latency: dict[str, Histogram] = {}
        self.batch_sentences = Histogram(self.SIZES)
        self.batch_requests = Histogram(self.SIZES)
        self.decode_seconds = Histogram(self.LATENCY)
        self.sentences = 0
        self.queue = 0  # sentences waiting for the worker

    def request(self, endpoint: str, status: int, seconds: float, error: str | None) -> None:
        with self.lock:
            self.requests[endpoint, status] += 1
            if error:
                self.errors[endpoint, error] += 1
            self.latency.setdefault(endpoint, Histogram(self.LATENCY)).observe(seconds)

    def batch(self, sentences: int, requests: int, seconds: float) -> None:
        with self.lock:
            self.batch_sentences.observe(sentences)
            self.batch_requests.observe(requests)
            self.decode_seconds.observe(seconds)
            self.sentences += sentences

    def render(self) -> str:
        with self.lock:
            out = ["# HELP transduce_requests_total HTTP requests by endpoint and status.",
                   "# TYPE transduce_requests_total counter"]
            out += [f'transduce_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                    for (e, s), n in sorted(self.requests.items())]
            out += ["# HELP transduce_errors_total Requests answered with an error, by type.",
                    "# TYPE transduce_errors_total counter"]
            out += [f'transduce_errors_total{{endpoint="{e}",error="{k}"}} {n}'
                    for (e, k), n in sorted(self.errors.items())]
            out += ["# HELP transduce_request_duration_seconds Time to answer a request.",
                    "# TYPE transduce_request_duration_seconds histogram"]
            for e, h in sorted(self.latency.items()):
                out += h.lines("transduce_request_duration_seconds", f'endpoint="{e}"')
            out += ["# HELP transduce_batch_size_sentences Sentences per decoder batch.",
                    "# TYPE transduce_batch_size_sentences histogram"]
            out += self.batch_sentences.lines("transduce_batch_size_sentences")
            out += ["# HELP transduce_batch_size_requests Requests merged into one decoder batch.",
                    "# TYPE transduce_batch_size_requests histogram"]
            out += self.batch_requests.lines("transduce_batch_size_requests")
            out += ["# HELP transduce_decode_seconds Time to decode one batch.",
                    "# TYPE transduce_decode_seconds histogram"]
            out += self.decode_seconds.lines("transduce_decode_seconds")
            out += ["# HELP transduce_sentences_total Sentences decoded.",
                    "# TYPE transduce_sentences_total counter",
                    f"transduce_sentences_total {self.sentences}",
                    "# HELP transduce_queue_sentences Sentences waiting to be decoded.",
                    "# TYPE transduce_queue_sentences gauge",
                    f"transduce_queue_sentences {self.queue}"]
        return "\n".join(out) + "\n"


class MeasureMiddleware:
    """Counts and times every request; answers JSON 500 for an exception nothing else handled.

    Plain ASGI (not ``@app.middleware``): it adds almost nothing to a request's cost.
    """

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
                await error_response(500, "internal_error", "internal server error")(
                    scope, receive, send_and_watch)
        finally:
            endpoint = getattr(scope.get("route"), "path", "other")
            self.metrics.request(endpoint, status, time.perf_counter() - start, error)


# ---------------------------------------------------------------------------------------------
# Dynamic batching: one worker thread owns the model.

@dataclasses.dataclass
class Job:
    texts: list[str]
    options: dict  # keyword arguments of Translator.search, all resolved
    attention: bool
    key: Any  # jobs with equal keys may share a batch
    future: concurrent.futures.Future
    arrived: float


class Overloaded(Exception):
    pass


class Batcher:
    """Queue of translation jobs and the worker thread that decodes them, merged when allowed."""

    def __init__(self, translator, limits: Limits, metrics: Metrics):
        self.translator, self.limits, self.metrics = translator, limits, metrics
        self.pending: collections.deque[Job] = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.thread: threading.Thread | None = None
        self.torch_threads = torch.get_num_threads()  # the worker uses the creator's setting
        self.inflight = 0  # requests inside the server (being read, queued or decoded)

    def start(self) -> None:
        with self.cond:
            self.closed = False
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="transduce-decoder",
                                               daemon=True)
                self.thread.start()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout=30)

    @contextlib.contextmanager
    def request(self):
        """Marks a request as inside the server, so the worker knows whether to wait for it."""
        with self.cond:
            self.inflight += 1
        try:
            yield
        finally:
            with self.cond:
                self.inflight -= 1

    def submit(self, texts: list[str], options: dict, attention: bool) -> concurrent.futures.Future:
        mergeable = self.limits.batching and not options.get("sampling")
        key = tuple(sorted(options.items())) if mergeable else object()
        job = Job(texts, options, attention, key, concurrent.futures.Future(), time.monotonic())
        self.start()
        with self.cond:
            if self.metrics.queue + len(texts) > self.limits.max_queue:
                raise Overloaded
            self.pending.append(job)
            self.metrics.queue += len(texts)
            self.cond.notify_all()
        return job.future

    def _next_batch(self) -> list[Job] | None:
        """The oldest job plus the queued jobs that may join it, waiting up to max_wait_ms after
        it arrived -- but not at all when no other request is inside the server (a lone client
        gets the latency of unbatched decoding)."""
        with self.cond:
            while not self.pending and not self.closed:
                self.cond.wait()
            if not self.pending:
                return None
            first = self.pending.popleft()
            batch, size = [first], len(first.texts)
            if not isinstance(first.key, tuple):
                return batch
            deadline = first.arrived + self.limits.max_wait_ms / 1000
            while size < self.limits.max_batch_size:
                for job in list(self.pending):
                    if job.key == first.key and size + len(job.texts) <= self.limits.max_batch_size:
                        self.pending.remove(job)
                        batch.append(job)
                        size += len(job.texts)
                remaining = deadline - time.monotonic()
                if (size >= self.limits.max_batch_size or remaining <= 0 or self.closed
                        or self.inflight <= len(batch)):
                    break
                self.cond.wait(remaining)
            return batch

    def _loop(self) -> None:
        torch.set_num_threads(self.torch_threads)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            with self.cond:
                self.metrics.queue -= sum(len(job.texts) for job in batch)
            # a request whose client went away is dropped; the rest can no longer be cancelled
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            texts = [t for job in batch for t in job.texts]
            start = time.perf_counter()
            try:
                results = self.translator.search(
                    texts, **batch[0].options, attention=any(j.attention for j in batch),
                    batch_size=max(1, len(texts)))
            except BaseException as e:  # handed to each waiting request
                for job in batch:
                    job.future.set_exception(e)
                continue
            self.metrics.batch(len(texts), len(batch), time.perf_counter() - start)
            for job in batch:
                job.future.set_result(results[:len(job.texts)])
                results = results[len(job.texts):]


# ---------------------------------------------------------------------------------------------
# Turning results into JSON.

def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def attention_json(result) -> dict:
    """Top hypothesis -> {"matrix": rows = tgt_tokens (+ "</s>"), columns = src_tokens}."""
    if result is None:
        return {"matrix": [], "src_tokens": [], "tgt_tokens": []}
    src, tgt = list(result.src_tokens), list(result.tgt_tokens)
    a = result.attention
    if a is None:
        return {"matrix": [], "src_tokens": src, "tgt_tokens": tgt}
    if a.size(0) > len(tgt):
        tgt.append("</s>")
    a = a[:len(tgt), :len(src)].float().nan_to_num(0.0)
    out = {"matrix": [[round(x, 4) for x in row] for row in a.tolist()],
           "src_tokens": src, "tgt_tokens": tgt}
    if result.copy is not None:  # copy models: probability that each output token was copied
        out["copy"] = [round(x, 4) for x in result.copy[:len(tgt)].float().tolist()]
    return out


def model_info(translator, name: str | None) -> dict:
    cfg = translator.config
    return {"name": name or cfg.name, "cell": cfg.model.cell, "attention": cfg.model.attention,
            "tokenizer": cfg.data.tokenizer,
            "parameters": sum(p.numel() for p in translator.model.parameters()),
            "device": str(translator.device)}


# ---------------------------------------------------------------------------------------------
# The app.

def create_app(translator, *, model_name: str | None = None, **limits) -> FastAPI:
    """A FastAPI app serving ``translator`` (a :class:`transduce.Translator`).

    Keyword arguments override the fields of :class:`Limits` (e.g. ``max_inputs=8``,
    ``max_wait_ms=10``, ``batching=False``).
    """
    limits = Limits(**limits)
    metrics = Metrics()
    batcher = Batcher(translator, limits, metrics)
    decoding = translator.config.decoding
    info = model_info(translator, model_name)
    static = resources.files("transduce.serve") / "static"
    page = (static / "index.html").read_bytes()
    assets = {name: (static / name).read_bytes() for name in STATIC_FILES}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.close)

    app = FastAPI(title="transduce", version=_version(), lifespan=lifespan, docs_url=None,
                  redoc_url=None, default_response_class=SafeJSONResponse)
    app.state.translator, app.state.limits = translator, limits
    app.state.metrics, app.state.batcher = metrics, batcher

    # -- errors: always JSON, always 4xx for anything a client can send ------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return error_response(e.status, e.kind, e.message, e.details, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        return error_response(422, "validation_error", "invalid request",
                              _pydantic_details(list(e.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return error_response(e.status_code, kind, str(e.detail), headers=e.headers)

    app.add_middleware(MeasureMiddleware, metrics=metrics)

    # -- endpoints ------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index():
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str):
        if name not in assets:  # a fixed list: no path from a request ever reaches the disk
            raise ApiError(404, "not_found", "no such file")
        return Response(assets[name], media_type=STATIC_FILES[name], headers=PAGE_HEADERS)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": info,
                "decoding": {k: getattr(decoding, k) for k in (
                    "beam_size", "n_best", "length_penalty", "sampling", "temperature", "top_k",
                    "top_p", "no_repeat_ngram_size")},
                "limits": dataclasses.asdict(limits)}

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/translate", openapi_extra={"requestBody": {
        "required": True,
        "content": {"application/json": {"schema": TranslateRequest.model_json_schema()}}}})
    async def translate(request: Request, attention: bool = False):
        with batcher.request():
            req = parse_request(await read_body(request, limits.max_body_bytes), limits)
            options = resolve_options(req, decoding, limits)
            try:
                future = batcher.submit(req.text, options, attention)
            except Overloaded:
                raise ApiError(503, "overloaded", "too many sentences waiting; retry shortly",
                               headers={"Retry-After": "1"}) from None
            try:
                results = await asyncio.wrap_future(future)
            except TransduceError as e:  # a setting the model cannot honour
                raise ApiError(422, "invalid_setting", str(e)) from None
        body: dict[str, Any] = {"translations": [nb[0].text if nb else "" for nb in results]}
        if req.n_best > 1:
            body["n_best"] = [[{"text": r.text, "score": _finite(r.score)} for r in nb]
                              for nb in results]
        if attention:
            body["attention"] = [attention_json(nb[0] if nb else None) for nb in results]
        return body

    return app


async def read_body(request: Request, max_bytes: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ApiError(413, "too_large", f"request body over {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, "too_large", f"request body over {max_bytes} bytes")
    return bytes(body)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_request(body: bytes, limits: Limits) -> TranslateRequest:
    """Body bytes -> a validated request, or an ApiError with status 400, 413 or 422."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        if isinstance(e, json.JSONDecodeError):
            msg = f"{e.msg} (line {e.lineno}, column {e.colno})"
        elif isinstance(e, UnicodeDecodeError):
            msg = "not UTF-8 text"
        elif isinstance(e, RecursionError):
            msg = "nested too deeply"
        else:
            msg = str(e)
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {msg}") from None
    try:
        req = TranslateRequest.model_validate(data)
    except ValidationError as e:
        raise ApiError(422, "validation_error", "invalid request",
                       _pydantic_details(e.errors())) from None
    if len(req.text) > limits.max_inputs:
        raise ApiError(413, "too_many_inputs",
                       f"{len(req.text)} inputs; at most {limits.max_inputs} per request")
    for i, t in enumerate(req.text):
        if len(t) > limits.max_chars:
            raise ApiError(413, "input_too_long",
                           f"text[{i}] has {len(t)} characters; at most {limits.max_chars}",
                           [{"loc": ["text", i], "msg": "too long"}])
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, "validation_error", f"text[{i}] is not valid Unicode",
                           [{"loc": ["text", i], "msg": "lone surrogate"}]) from None
    return req


def resolve_options(req: TranslateRequest, decoding, limits: Limits) -> dict:
    """Every Translator.search setting, defaults filled in, so equal settings batch together."""
    beam = req.beam_size or decoding.beam_size
    sampling = decoding.sampling if req.sampling is None else req.sampling
    if beam > limits.max_beam_size:
        raise ApiError(422, "validation_error", f"beam_size {beam} is over the limit "
                       f"({limits.max_beam_size})", [{"loc": ["beam_size"], "msg": "too large"}])
    if req.max_len is not None and req.max_len > limits.max_len:
        raise ApiError(422, "validation_error", f"max_len {req.max_len} is over the limit "
                       f"({limits.max_len})", [{"loc": ["max_len"], "msg": "too large"}])
    if req.n_best > (1 if sampling else beam):
        raise ApiError(422, "validation_error",
                       f"n_best ({req.n_best}) cannot exceed the beam size ({beam})"
                       + (" and must be 1 when sampling" if sampling else ""),
                       [{"loc": ["n_best"], "msg": "too large"}])
    pick = lambda v, d: d if v is None else v  # noqa: E731
    options = {"beam_size": beam, "n_best": req.n_best, "sampling": sampling,
               "max_len": req.max_len or limits.max_len,
               "length_penalty": pick(req.length_penalty, decoding.length_penalty),
               "no_repeat_ngram_size": pick(req.no_repeat_ngram_size,
                                            decoding.no_repeat_ngram_size)}
    if sampling:
        options.update(temperature=pick(req.temperature, decoding.temperature),
                       top_k=pick(req.top_k, decoding.top_k), top_p=pick(req.top_p, decoding.top_p),
                       seed=req.seed)
    return options


def _version() -> str:
    from transduce import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# Running it.

def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(model_dir, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          threads: int | None = None, log_level: str = "info", **limits) -> None:
    """Load ``model_dir`` and serve it with uvicorn until interrupted.

    ``threads`` sets torch's intra-op threads (on a busy machine 1 is often fastest: the event
    loop needs a core too); other keyword arguments are :class:`Limits` fields.
    """
    import uvicorn

    from transduce.api import load

    if threads:
        torch.set_num_threads(threads)

    if not is_loopback(host):
        msg = (f"warning: binding to {host} makes the server reachable from other machines; "
               "it has no authentication. Use --host 127.0.0.1 to keep it local.")
        print(msg, file=sys.stderr, flush=True)
        log.warning(msg)
    translator = load(model_dir, device=device)
    app = create_app(translator, **limits)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {model_dir} at http://{shown}:{port}/ (Ctrl+C to stop)", file=sys.stderr,
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=5)
