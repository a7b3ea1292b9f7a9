"""The HTTP API and web page of ``transduce serve`` (``GET /``, ``POST /translate``,
``GET /health``, ``GET /metrics``; docs/serving.md describes each): :func:`create_app` builds the
app, its routes and their answers; :func:`serve` runs it with uvicorn."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import sys
from importlib import resources
from typing import Any, Optional

import torch

from transduce import __version__
from transduce.decode.translator import Result
from transduce.errors import TransduceError

try:
    from fastapi import FastAPI, Query, Request
    from fastapi.responses import Response
    from prometheus_client import generate_latest
except ImportError as e:  # pragma: no cover - depends on the environment
    raise TransduceError(f"transduce serve needs FastAPI, uvicorn and prometheus_client ({e.name} "
                         "is missing): pip install 'transduce[serve]'") from e

from transduce.serve.batcher import Batcher, Overloaded
from transduce.serve.front_door import (LOOPBACK_NAMES, FrontDoor, check_token, is_loopback,
                                        listen)
from transduce.serve.metrics import MeasureMiddleware, Metrics
from transduce.serve.requests import (EXCEPTION_HANDLERS, ApiError, Limits, SafeJSONResponse,
                                      TranslateRequest, parse_request, read_body, resolve_options)

STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {  # the page may load nothing from anywhere but this server
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the format generate_latest writes


def create_app(translator, *, model_name: str | None = None,
               hosts: frozenset[str] = LOOPBACK_NAMES, token: str | None = None,
               **limits) -> FastAPI:
    """A FastAPI app serving ``translator`` (a :class:`transduce.Translator`).

    ``hosts``: the names a request's Host header may give besides IP addresses (``{"*"}``: any);
    ``token``: if given, every endpoint but the page needs ``Authorization: Bearer <token>``
    (:class:`FrontDoor`). Other keyword arguments override the fields of :class:`Limits` (e.g.
    ``max_inputs=8``, ``max_wait_ms=10``, ``batching=False``).
    """
    check_token(token)
    limits = Limits(**limits)
    metrics = Metrics()
    batcher = Batcher(translator, metrics, max_batch_size=limits.max_batch_size,
                      max_wait_ms=limits.max_wait_ms, max_queue=limits.max_queue,
                      merge=limits.batching)
    cfg, decoding = translator.config, translator.config.decoding
    architecture, attention = cfg.model.describe()
    info = {"name": model_name or cfg.name, "src_type": cfg.data.src_type,
            # cell: the model in a word (lstm, gru, rnn, transformer); attention: its kind
            "cell": "transformer" if cfg.model.arch == "transformer" else cfg.model.cell,
            "attention": attention, "architecture": architecture,
            "tokenizer": cfg.data.tokenizer,
            "parameters": sum(p.numel() for p in translator.model.parameters()),
            "device": str(translator.device)}
    static = resources.files("transduce.serve") / "static"
    page = (static / "index.html").read_bytes()
    assets = {name: (static / name).read_bytes() for name in STATIC_FILES}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.close)

    app = FastAPI(title="transduce", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, default_response_class=SafeJSONResponse,
                  exception_handlers=EXCEPTION_HANDLERS)
    app.add_middleware(FrontDoor, hosts=hosts, token=token)
    app.add_middleware(MeasureMiddleware, metrics=metrics)  # the outer one: it counts all
    app.state.translator, app.state.limits = translator, limits
    app.state.metrics, app.state.batcher = metrics, batcher

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
        return Response(generate_latest(metrics.registry), media_type=METRICS_TYPE)

    @app.post("/translate", openapi_extra={"requestBody": {
        "required": True,
        "content": {"application/json": {"schema": TranslateRequest.model_json_schema()}}}})
    async def translate(request: Request, attention: bool = False):
        if translator.model.images:  # its inputs would be paths on this machine: never
            raise ApiError(404, "image_model", "this model captions images: POST the image to "
                           "/caption")
        with batcher.request():
            req = parse_request(await read_body(request, limits.max_body_bytes), limits)
            results = await decode(req.text, resolve_options(req, decoding, limits), attention,
                                   "invalid_setting")  # a setting the model cannot honour
        body: dict[str, Any] = {"translations": [nb[0].text if nb else "" for nb in results]}
        if req.n_best > 1:
            body["n_best"] = [[{"text": r.text, "score": r.score if math.isfinite(r.score)
                                else None} for r in nb] for nb in results]  # JSON has no inf
        if attention:
            body["attention"] = [attention_json(nb[0] if nb else None) for nb in results]
        return body

    @app.post("/caption")
    async def caption(request: Request, attention: bool = False,
                      beam_size: Optional[int] = Query(None, ge=1)):
        """An image model's caption of the image in the body (PNG, JPEG, WebP, ...: sent with
        its ``Content-Type: image/...``)."""
        if not translator.model.images:
            raise ApiError(404, "not_an_image_model", "this model reads text: use POST "
                           "/translate")
        with batcher.request():
            image = await read_body(request, limits.max_body_bytes)
            if not image:
                raise ApiError(422, "validation_error", "the body is empty; send the image file")
            options = resolve_options(TranslateRequest(text=[], beam_size=beam_size), decoding,
                                      limits)
            best = (await decode([image], options, attention, "invalid_image"))[0]
        body: dict[str, Any] = {"caption": best[0].text if best else ""}
        if attention:
            body["attention"] = image_attention_json(best[0] if best else None)
        return body

    async def decode(sources: list, options: dict, attention: bool, invalid: str) -> list:
        """The n-best lists of ``sources`` from the batching worker; a source or setting the
        model cannot take is a 422 of kind ``invalid``."""
        try:
            future = batcher.submit(sources, options, attention)
        except Overloaded:
            raise ApiError(503, "overloaded", "too many sentences waiting; retry shortly",
                           headers={"Retry-After": "1"}) from None
        try:
            return await asyncio.wrap_future(future)
        except TransduceError as e:
            raise ApiError(422, invalid, str(e)) from None

    return app


def image_attention_json(result: Result | None) -> dict[str, Any]:
    """Top caption -> {"matrix": rows = tgt_tokens (+ "</s>"), columns = the image's cells row by
    row, "grid": [rows, columns] of cells}."""
    if result is None or result.attention is None:
        return {"matrix": [], "tgt_tokens": [], "grid": [0, 0]}
    tgt, a = list(result.tgt_tokens), result.attention
    if a.size(0) > len(tgt):
        tgt.append("</s>")
    side = math.isqrt(a.size(1))
    return {"matrix": [[round(x, 4) for x in row] for row in a[:len(tgt)].float().tolist()],
            "tgt_tokens": tgt, "grid": [side, side]}


def attention_json(result: Result | None) -> dict[str, Any]:
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


def serve(model_dir, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          threads: int | None = None, log_level: str = "info", allow_hosts=(),
          token: str | None = None, quantize: str | None = None, **limits) -> None:
    """Load ``model_dir`` (or a list of model_dirs: an ensemble) and serve it with uvicorn until
    interrupted.

    ``threads`` sets torch's intra-op threads (on a busy machine 1 is often fastest: the event
    loop needs a core too); requests may name the server ``host``, a loopback name or one of
    ``allow_hosts``; ``token`` (default: ``$TRANSDUCE_TOKEN``) is required of them if given;
    ``quantize``: ``"int8"`` decoder layers (CPU); other keyword arguments are :class:`Limits`
    fields.
    """
    import uvicorn

    from transduce.api import load

    token = token or os.environ.get("TRANSDUCE_TOKEN") or None
    check_token(token)
    sock = listen(host, port)  # before the model loads: a port in use fails at once
    try:
        if threads:
            torch.set_num_threads(threads)
        if not is_loopback(host) and not token:
            print(f"warning: binding to {host} makes the server reachable from other machines, "
                  "and it has no token: anyone who reaches it can use it. Set TRANSDUCE_TOKEN "
                  "(or --token) to require one, or use --host 127.0.0.1 to keep it local.",
                  file=sys.stderr, flush=True)
        app = create_app(load(model_dir, device=device, quantize=quantize), token=token,
                         hosts=LOOPBACK_NAMES | {host.strip("[]").lower(), *allow_hosts}, **limits)
        shown, port = f"[{host}]" if ":" in host else host, sock.getsockname()[1]  # port 0: any
        shown_dirs = (" + ".join(map(str, model_dir)) if isinstance(model_dir, (list, tuple))
                      else model_dir)
        print(f"serving {shown_dirs} at http://{shown}:{port}/ (Ctrl+C to stop)"
              + ("; the page needs the token: open it as /#token=<token>" if token else ""),
              file=sys.stderr, flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False,
                                      timeout_graceful_shutdown=5)).run(sockets=[sock])
    finally:
        sock.close()
