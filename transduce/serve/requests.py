"""What a client sends, and what it gets back when that is wrong: the ``POST /translate`` body
(schema, size limit, checks, decoding settings), and the error JSON of every endpoint,
``{"error": kind, "message": text, "details": [{"loc": [...], "msg": ...}]}``."""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Optional, Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, ValidationError, create_model
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from transduce.config import DecodingConfig
from transduce.errors import TransduceError

log = logging.getLogger("transduce.serve")

SAMPLING_ONLY = ("temperature", "top_k", "top_p", "seed")
SETTINGS = ("beam_size", "n_best", "max_len", "sampling", "temperature", "top_k", "top_p",
            "length_penalty", "no_repeat_ngram_size", "seed")  # what a request may set
MAX_DETAILS, MAX_LOC = 20, 64  # error details per reply, characters per field name in them


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

    def __post_init__(self):
        if not 0 <= self.max_wait_ms <= 60_000:  # NaN too
            raise TransduceError(f"max_wait_ms must be 0 to 60000, got {self.max_wait_ms}")


def _setting(name: str) -> tuple[Any, Any]:
    """The request field for the setting ``name``: :class:`DecodingConfig`'s type and bounds,
    unset (None: the config decides) but for n_best, 1 unless asked (not the config's)."""
    field = DecodingConfig.model_fields[name]
    bounds = {k: v for m in field.metadata for k, v in dataclasses.asdict(m).items()}
    default = 1 if name == "n_best" else None
    return field.annotation if default else Optional[field.annotation], Field(default, **bounds)


TranslateRequest = create_model(
    "TranslateRequest", __module__=__name__,
    __doc__="The body of ``POST /translate``. Unset settings come from the model's ``decoding`` "
            "config.",
    __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False),
    text=(list[str], ...), **{name: _setting(name) for name in SETTINGS},
    # per input: the target text its output starts with; the target phrases it must contain
    prefix=(Optional[list[str]], None),
    constraints=(Optional[list[list[str]]], None))
CONTROLS = ("prefix", "constraints")  # per-input fields: such a request is decoded alone
MAX_CONSTRAINTS = 16  # phrases per input


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) from its Content-Length or as soon as it grows over ``max_bytes``."""
    too_large = ApiError(413, "too_large", f"request body over {max_bytes} bytes")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise too_large
    except ClientDisconnect:  # the client's mistake (or its user's Ctrl+C), not the server's
        log.info("%s %s: the client went away after %d bytes of its body", request.method,
                 request.url.path, len(body))
        raise ApiError(400, "client_disconnected", "the connection closed before the whole "
                       "body arrived") from None
    return bytes(body)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_request(body: bytes, limits: Limits) -> TranslateRequest:
    """Body bytes -> a validated request, or an ApiError with status 400, 413 or 422."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        msg = (f"{e.msg} (line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError)
               else "not UTF-8 text" if isinstance(e, UnicodeDecodeError)
               else "nested too deeply" if isinstance(e, RecursionError) else str(e))
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {msg}") from None
    texts = data.get("text") if isinstance(data, dict) else None
    if isinstance(texts, list) and len(texts) > limits.max_inputs:  # before checking each one
        raise ApiError(413, "too_many_inputs",
                       f"{len(texts)} inputs; at most {limits.max_inputs} per request")
    try:
        req = TranslateRequest.model_validate(data)
    except ValidationError as e:
        raise ApiError(422, "validation_error", "invalid request",
                       validation_details(e.errors())) from None
    for name in CONTROLS:
        given = getattr(req, name)
        if given is not None and len(given) != len(req.text):
            raise ApiError(422, "validation_error", f"{name}: {len(given)} items for "
                           f"{len(req.text)} texts; give one per text", [{"loc": [name],
                                                                          "msg": "length"}])
    for i, phrases in enumerate(req.constraints or []):
        if len(phrases) > MAX_CONSTRAINTS or sum(map(len, phrases)) > limits.max_chars:
            raise ApiError(413, "too_many_constraints", f"constraints[{i}]: at most "
                           f"{MAX_CONSTRAINTS} phrases of {limits.max_chars} characters in all",
                           [{"loc": ["constraints", i], "msg": "too long"}])
    strings = [("text", i, t) for i, t in enumerate(req.text)]
    strings += [("prefix", i, t) for i, t in enumerate(req.prefix or [])]
    strings += [("constraints", i, t) for i, c in enumerate(req.constraints or []) for t in c]
    for name, i, t in strings:
        if len(t) > limits.max_chars:
            raise ApiError(413, "input_too_long",
                           f"{name}[{i}] has {len(t)} characters; at most {limits.max_chars}",
                           [{"loc": [name, i], "msg": "too long"}])
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, "validation_error", f"{name}[{i}] is not valid Unicode",
                           [{"loc": [name, i], "msg": "lone surrogate"}]) from None
    return req


def resolve_options(req: TranslateRequest, decoding: DecodingConfig,
                    limits: Limits) -> dict[str, Any]:
    """Every Translator.search setting: the request's, else ``decoding``'s (checked by
    :meth:`DecodingConfig.override`), within ``limits.max_beam_size`` and ``max_len`` (also the
    cap on the default length). Settings only sampling reads keep the config's values when not
    sampling, so requests that decode alike have equal options and batch together."""
    if req.max_len is not None and req.max_len > limits.max_len:
        raise _over_limit("max_len", req.max_len, limits.max_len)
    asked = req.model_dump(exclude={"text", *CONTROLS})
    asked["max_len"] = req.max_len or limits.max_len
    if not (decoding.sampling if req.sampling is None else req.sampling):
        asked.update(dict.fromkeys(SAMPLING_ONLY))  # None: keep the config's value
    try:
        options = decoding.override(**asked)
    except TransduceError as e:  # each field is in range (TranslateRequest), so what fails is
        # the check of n_best against the beam size (or against sampling: n_best must be 1)
        raise ApiError(422, "validation_error", str(e),
                       [{"loc": ["n_best"], "msg": "too large"}]) from None
    if options.beam_size > limits.max_beam_size:
        raise _over_limit("beam_size", options.beam_size, limits.max_beam_size)
    controls = {k: getattr(req, k) for k in CONTROLS if getattr(req, k) is not None}
    return {**options.model_dump(), **controls}


def _over_limit(field: str, value: int, limit: int) -> ApiError:
    return ApiError(422, "validation_error", f"{field} {value} is over the limit ({limit})",
                    [{"loc": [field], "msg": "too large"}])


class SafeJSONResponse(JSONResponse):
    """JSON that any string can go through: UTF-8, or ASCII escapes if a string holds a lone
    surrogate (a client can send one, e.g. as an unknown field's name, and it may be echoed)."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


class ApiError(Exception):
    """An error answered to the client; raise it anywhere while handling a request."""

    def __init__(self, status: int, kind: str, message: str, details: list | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.details, self.headers = details or [], headers

    def response(self) -> SafeJSONResponse:
        """The error every endpoint answers (``kind`` also in ``X-Transduce-Error``, which the
        metrics middleware reads)."""
        return SafeJSONResponse({"error": self.kind, "message": self.message,
                                 "details": self.details}, status_code=self.status,
                                headers={**(self.headers or {}), "X-Transduce-Error": self.kind})


def validation_details(errors: Sequence[dict]) -> list[dict]:
    """Pydantic errors -> details: field path and message only, never the offending input (the
    first MAX_DETAILS, field names cut to MAX_LOC characters: a reply stays small)."""
    return [{"loc": [p if isinstance(p, int) else str(p)[:MAX_LOC] for p in e.get("loc", ())],
             "msg": str(e.get("msg", ""))} for e in errors[:MAX_DETAILS]]


async def _error_json(request: Request, e: Exception) -> SafeJSONResponse:
    """An :class:`ApiError`, FastAPI's invalid query (422) or Starlette's 404/405, as JSON."""
    if isinstance(e, RequestValidationError):
        e = ApiError(422, "validation_error", "invalid request", validation_details(e.errors()))
    elif isinstance(e, HTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        e = ApiError(e.status_code, kind, str(e.detail), headers=e.headers)
    return e.response()


# the app's exception handlers: errors are always JSON, and 4xx for anything a client can send
EXCEPTION_HANDLERS = dict.fromkeys([ApiError, RequestValidationError, HTTPException], _error_json)
