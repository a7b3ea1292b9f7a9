"""The HTTP API as a product: every endpoint, every limit and malformed request, dynamic batching
that changes nothing in the results, and a fuzz test that finds no 500 and no dead server."""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import transduce
from transduce.errors import TransduceError
from transduce.serve.app import create_app, serve
from transduce.serve.front_door import is_loopback
from transduce.serve.requests import Limits, TranslateRequest, resolve_options
from conftest import tiny_config

LIMITS = dict(max_inputs=4, max_chars=50, max_body_bytes=2000, max_beam_size=4, max_len=20)
JSON = {"content-type": "application/json"}
_MODEL_LOCK = threading.Lock()
_MODEL_DIR: list = []


def tiny_model_dir(data_dir, tmp_path_factory):
    """Train a tiny reversal model once per test session (shared with tests/test_browser.py)."""
    with _MODEL_LOCK:
        if not _MODEL_DIR:
            model_dir = tmp_path_factory.mktemp("serve") / "model"
            transduce.train(tiny_config(data_dir, model_dir,
                                        training={"max_steps": 40, "validate_every": 40}))
            _MODEL_DIR.append(model_dir)
        return _MODEL_DIR[0]


@pytest.fixture(scope="session")
def model_dir(reverse_data, tmp_path_factory):
    return tiny_model_dir(reverse_data, tmp_path_factory)


@pytest.fixture(scope="session")
def translator(model_dir):
    return transduce.load(model_dir, device="cpu")


@pytest.fixture(scope="module")
def client(translator):
    with _client(create_app(translator, **LIMITS)) as c:
        yield c


def _error(r: httpx.Response, status: int, kind: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "message", "details"} and body["message"]
    if kind:
        assert body["error"] == kind
    return body


def _client(app) -> TestClient:
    """A client of ``app`` whose requests name the server localhost (the Host check)."""
    return TestClient(app, base_url="http://localhost")


def _async_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


async def _post_all(app, bodies: list[dict], query: str = "") -> list[httpx.Response]:
    async with _async_client(app) as c:
        return await asyncio.gather(*(c.post("/translate" + query, json=b) for b in bodies))


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def _batches(app) -> tuple[float, float]:
    """How many decoder batches the app ran, and how many requests they held in all."""
    registry = app.state.metrics.registry
    return (registry.get_sample_value("transduce_batch_size_requests_count"),
            registry.get_sample_value("transduce_batch_size_requests_sum"))


# -- endpoints ---------------------------------------------------------------------------------

def test_health_names_the_model_and_limits(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["model"]["name"] == "tiny" and body["model"]["parameters"] > 0
    assert body["limits"]["max_inputs"] == 4 and body["decoding"]["beam_size"] == 3


def test_page_and_its_files_come_from_the_package_only(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    for needed in ('id="text"', 'id="translate"', 'id="beam_size"', 'id="results"',
                   "/static/app.js", "/static/style.css"):
        assert needed in html
    js, css = client.get("/static/app.js"), client.get("/static/style.css")
    assert js.status_code == css.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    for text in (html, js.text, css.text):  # no CDN, no external request of any kind
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I)


def test_openapi_describes_the_translate_body(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/translate"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["additionalProperties"] is False
    assert "text" in body["schema"]["required"] and "beam_size" in body["schema"]["properties"]


@pytest.mark.parametrize("path", [
    "/static/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py",
    "/static/..%2f..%2fpyproject.toml", "/static/", "/etc/passwd", "/docs", "/redoc"])
def test_no_path_reaches_the_disk(client, path):
    _error(client.get(path), 404, "not_found")


def test_translate_equals_the_python_api(client, translator):
    texts = ["w1 w2 w3", "w4 w5", "w6"]
    r = client.post("/translate", json={"text": texts, "beam_size": 2})
    assert r.status_code == 200, r.text
    assert r.json() == {"translations": translator.translate(texts, beam_size=2, max_len=20)}


def test_attention_matrix_is_target_by_source(client, translator):
    texts = ["w1 w2 w3 w4", "w5 unknownword", ""]
    r = client.post("/translate?attention=true", json={"text": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["attention"]) == 3
    expected = translator.search(texts, max_len=20, attention=True)
    for att, nb, text in zip(body["attention"], expected, body["translations"]):
        if not nb:
            assert att == {"matrix": [], "src_tokens": [], "tgt_tokens": []} and text == ""
            continue
        assert att["src_tokens"] == nb[0].src_tokens
        assert att["tgt_tokens"][:len(nb[0].tgt_tokens)] == nb[0].tgt_tokens
        assert att["tgt_tokens"][-1] == "</s>" or len(nb[0].tgt_tokens) == 20
        assert len(att["matrix"]) == len(att["tgt_tokens"])
        for row in att["matrix"]:
            assert len(row) == len(att["src_tokens"])
            assert sum(row) == pytest.approx(1.0, abs=1e-3)
    assert "attention" not in client.post("/translate?attention=false",
                                          json={"text": ["w1"]}).json()


def test_empty_and_blank_inputs_give_empty_outputs(client):
    r = client.post("/translate?attention=true", json={"text": ["", "   ", "w1"]})
    assert r.status_code == 200
    assert r.json()["translations"][:2] == ["", ""]
    assert client.post("/translate", json={"text": []}).json() == {"translations": []}


def test_n_best_lists_are_sorted_and_start_with_the_translation(client):
    r = client.post("/translate", json={"text": ["w1 w2", "w3"], "beam_size": 3, "n_best": 3})
    body = r.json()
    for best, nbest in zip(body["translations"], body["n_best"]):
        assert len(nbest) == 3 and nbest[0]["text"] == best
        scores = [h["score"] for h in nbest]
        assert scores == sorted(scores, reverse=True)


def test_a_request_sets_each_input_s_prefix_and_constraints(client, translator):
    texts, prefix, constraints = ["w1 w2", "w3 w4"], ["w5", "w6 w6"], [["w7 w7"], []]
    r = client.post("/translate", json={"text": texts, "beam_size": 3, "prefix": prefix,
                                        "constraints": constraints})
    assert r.status_code == 200, r.text
    assert r.json()["translations"] == translator.translate(
        texts, beam_size=3, prefix=prefix, constraints=constraints, max_len=LIMITS["max_len"])
    first = r.json()["translations"][0].split()
    assert first[0] == "w5" and "w7 w7" in " ".join(first)
    _error(client.post("/translate", json={"text": texts, "constraints": [["w1"]]}), 422,
           "validation_error")
    _error(client.post("/translate", json={"text": ["w1"], "constraints": [["zzz"]]}), 422)
    _error(client.post("/translate", json={"text": ["w1"], "prefix": ["w1" * 30]}), 413,
           "input_too_long")


def test_sampling_is_reproducible_with_a_seed(client):
    body = {"text": ["w1 w2 w3"] * 3, "sampling": True, "temperature": 2.0, "top_k": 8}
    a = client.post("/translate", json={**body, "seed": 7}).json()["translations"]
    b = client.post("/translate", json={**body, "seed": 7}).json()["translations"]
    assert a == b
    outs = {tuple(client.post("/translate", json={**body, "seed": s}).json()["translations"])
            for s in range(4)}
    assert len(outs) > 1


# -- limits and malformed requests ---------------------------------------------------------------

@pytest.mark.parametrize("body,status,kind", [
    (b"", 400, "malformed_json"),
    (b"{", 400, "malformed_json"),
    (b'{"text": ["a"],}', 400, "malformed_json"),
    (b"\xff\xfe\x00garbage", 400, "malformed_json"),
    (b'{"text": ["a"], "temperature": NaN, "sampling": true}', 400, "malformed_json"),
    (b'{"text": ["a"], "length_penalty": Infinity}', 400, "malformed_json"),
    (b"[" * 1500 + b"]" * 1500, 413, "too_large"),  # over max_body_bytes
    (b"null", 422, "validation_error"),
    (b'"w1 w2"', 422, "validation_error"),
    (b'["w1 w2"]', 422, "validation_error"),
    (b"{}", 422, "validation_error"),
    (b'{"text": "w1 w2"}', 422, "validation_error"),
    (b'{"text": [1, 2]}', 422, "validation_error"),
    (b'{"text": [null]}', 422, "validation_error"),
    (b'{"text": ["a"], "beam_size": "5"}', 422, "validation_error"),
    (b'{"text": ["a"], "beam_size": 2.5}', 422, "validation_error"),
    (b'{"text": ["a"], "beam_size": true}', 422, "validation_error"),
    (b'{"text": ["a"], "beam_size": 0}', 422, "validation_error"),
    (b'{"text": ["a"], "beam_size": 5}', 422, "validation_error"),  # over max_beam_size
    (b'{"text": ["a"], "beam_size": 100000000000000000000000000}', 422, "validation_error"),
    (b'{"text": ["a"], "max_len": 21}', 422, "validation_error"),  # over the limit
    (b'{"text": ["a"], "max_len": -1}', 422, "validation_error"),
    (b'{"text": ["a"], "beam_size": 3, "n_best": 4}', 422, "validation_error"),
    (b'{"text": ["a"], "sampling": true, "n_best": 2}', 422, "validation_error"),
    (b'{"text": ["a"], "sampling": "yes"}', 422, "validation_error"),
    (b'{"text": ["a"], "temperature": 0}', 422, "validation_error"),
    (b'{"text": ["a"], "top_p": 1.5}', 422, "validation_error"),
    (b'{"text": ["a"], "seed": -1}', 422, "validation_error"),
    (b'{"text": ["a"], "beam": 5}', 422, "validation_error"),  # unknown field
    (b'{"text": ["a"], "model_dir": "/etc"}', 422, "validation_error"),
    (b'{"text": ["\\ud800"]}', 422, "validation_error"),  # a lone surrogate
    (b'{"text": ["a", "b", "c", "d", "e"]}', 413, "too_many_inputs"),
    (json.dumps({"text": ["w1 " * 17]}).encode(), 413, "input_too_long"),
    (json.dumps({"text": ["w"] * 3, "pad": "x" * 3000}).encode(), 413, "too_large"),
])
def test_bad_requests_get_a_4xx_json_error(client, body, status, kind):
    _error(client.post("/translate", content=body, headers=JSON), status, kind)


def test_unknown_field_error_says_which_field(client):
    body = _error(client.post("/translate", json={"text": ["a"], "beams": 2}), 422)
    assert body["details"] == [{"loc": ["beams"], "msg": "Extra inputs are not permitted"}]


@pytest.mark.parametrize("body,field", [
    ({"beam_size": 3, "n_best": 4}, "n_best"), ({"sampling": True, "n_best": 2}, "n_best"),
    ({"beam_size": 5}, "beam_size"), ({"max_len": 21}, "max_len")])
def test_a_setting_out_of_bounds_says_which_field(client, body, field):
    body = _error(client.post("/translate", json={"text": ["a"], **body}), 422, "validation_error")
    assert [d["loc"] for d in body["details"]] == [[field]]


def test_settings_only_sampling_reads_do_not_split_beam_batches(translator):
    decoding, limits = translator.config.decoding, Limits(max_beam_size=4, max_len=20)
    plain = resolve_options(TranslateRequest(text=["a"]), decoding, limits)
    assert resolve_options(TranslateRequest(text=["a"], temperature=3.0, seed=5), decoding,
                           limits) == plain
    assert plain["max_len"] == 20 and plain["beam_size"] == decoding.beam_size
    sampled = resolve_options(TranslateRequest(text=["a"], sampling=True, seed=5), decoding,
                              limits)
    assert sampled["sampling"] and sampled["seed"] == 5


def test_deeply_nested_json_is_malformed_not_a_crash(translator):
    with _client(create_app(translator)) as c:
        _error(c.post("/translate", content=b"[" * 200_000 + b"]" * 200_000, headers=JSON), 400,
               "malformed_json")


def test_oversized_body_is_refused_before_it_is_read(client):
    r = client.post("/translate", content=b"{}", headers={**JSON, "content-length": "99999999"})
    _error(r, 413, "too_large")


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/translate", 405), ("PUT", "/translate", 405), ("POST", "/health", 405),
    ("DELETE", "/", 405), ("GET", "/nope", 404), ("POST", "/translate?attention=maybe", 422),
])
def test_wrong_methods_paths_and_queries_answer_json(client, method, path, status):
    kwargs = {"json": {"text": ["w1"]}} if method == "POST" else {}
    _error(client.request(method, path, **kwargs), status)


def test_overloaded_queue_answers_503_with_retry_after(translator):
    with _client(create_app(translator, max_queue=1)) as c:
        r = c.post("/translate", json={"text": ["w1", "w2"]})
        assert _error(r, 503, "overloaded") and r.headers["retry-after"] == "1"
        assert c.post("/translate", json={"text": ["w1"]}).status_code == 200


class _Spy:
    """A translator that records its batch sizes and fails on the input "boom"."""

    def __init__(self, real, error=None):
        self.real, self.error, self.sizes = real, error, []
        self.config, self.model, self.device = real.config, real.model, real.device

    def search(self, texts, **kw):
        self.sizes.append(len(texts))
        if "boom" in texts:
            raise self.error
        return self.real.search(texts, **kw)


def test_a_setting_the_model_rejects_is_a_422(translator):
    with _client(create_app(_Spy(translator, TransduceError("no such setting")))) as c:
        _error(c.post("/translate", json={"text": ["boom"]}), 422, "invalid_setting")


def test_a_decoder_crash_answers_json_and_the_server_keeps_going(translator):
    app = create_app(_Spy(translator, RuntimeError("simulated bug")))
    with _client(app) as c:
        _error(c.post("/translate", json={"text": ["boom"]}), 500, "internal_error")
        r = c.post("/translate", json={"text": ["w1 w2"]})
        assert r.status_code == 200 and r.json()["translations"][0]
        assert _metric(c.get("/metrics").text, 'transduce_errors_total{endpoint="/translate",'
                                               'error="internal_error"}') == 1


# -- metrics --------------------------------------------------------------------------------------

def test_metrics_count_requests_errors_latency_and_batches(translator):
    with _client(create_app(translator, **LIMITS)) as c:
        for _ in range(3):
            assert c.post("/translate", json={"text": ["w1 w2", "w3"]}).status_code == 200
        c.post("/translate", content=b"{", headers=JSON)
        c.get("/health")
        text = c.get("/metrics").text
    t = 'endpoint="/translate"'
    assert _metric(text, f'transduce_requests_total{{{t},status="200"}}') == 3
    assert _metric(text, f'transduce_requests_total{{{t},status="400"}}') == 1
    assert _metric(text, f'transduce_errors_total{{{t},error="malformed_json"}}') == 1
    assert _metric(text, f"transduce_request_duration_seconds_count{{{t}}}") == 4
    assert _metric(text, f'transduce_request_duration_seconds_bucket{{{t},le="+Inf"}}') == 4
    assert _metric(text, "transduce_batch_size_sentences_count") == 3
    assert _metric(text, "transduce_batch_size_sentences_sum") == 6
    assert _metric(text, 'transduce_batch_size_sentences_bucket{le="2.0"}') == 3
    assert _metric(text, "transduce_sentences_total") == 6
    assert _metric(text, "transduce_queue_sentences") == 0
    for line in text.splitlines():  # well-formed exposition text
        assert line.startswith("# ") or re.fullmatch(r"[a-z_]+(\{.*\})? [0-9.e+-]+", line), line


# -- dynamic batching ------------------------------------------------------------------------------

REQUESTS = [["w1 w2 w3"], ["w4 w5", "w6 w7 w8 w9 w10"], ["w2"], ["w3 w3 w1 w5 w6 w7"],
            ["w11 w1", ""], ["w9 w8 w7"], ["w5 w5 w5 w5"], ["w10"]]


def test_concurrent_requests_share_a_batch_and_get_what_they_would_alone(translator):
    app = create_app(translator, max_wait_ms=300, max_batch_size=64, max_len=20)
    responses = asyncio.run(_post_all(app, [{"text": t, "beam_size": 3} for t in REQUESTS],
                                      "?attention=true"))
    app.state.batcher.close()
    batches, merged = _batches(app)
    assert batches < len(REQUESTS) and merged == len(REQUESTS)
    for texts, r in zip(REQUESTS, responses):
        assert r.status_code == 200, r.text
        alone = translator.search(texts, beam_size=3, max_len=20, attention=True)
        body = r.json()
        assert body["translations"] == [nb[0].text if nb else "" for nb in alone]
        for att, nb in zip(body["attention"], alone):
            if nb:
                a = nb[0].attention
                assert len(att["matrix"]) == a.size(0)
                for got, want in zip(att["matrix"], a.tolist()):
                    assert got == pytest.approx(want, abs=2e-4)


def test_only_requests_with_equal_settings_are_merged(translator):
    app = create_app(translator, max_wait_ms=300, max_len=20)
    bodies = [{"text": t, "beam_size": 1 + i % 2} for i, t in enumerate(REQUESTS)]
    bodies += [{"text": ["w1 w2 w3"], "sampling": True, "seed": s} for s in range(2)]
    responses = asyncio.run(_post_all(app, bodies))
    app.state.batcher.close()
    # at least: one batch for beam 1, one for beam 2, one per sampled request (never merged)
    assert 4 <= _batches(app)[0] < len(bodies)
    for body, r in zip(bodies, responses):
        opts = {k: v for k, v in body.items() if k != "text"}
        assert r.json()["translations"] == translator.translate(body["text"], max_len=20, **opts)


def test_batching_off_decodes_each_request_alone(translator):
    app = create_app(translator, batching=False, max_wait_ms=300)
    responses = asyncio.run(_post_all(app, [{"text": t} for t in REQUESTS[:4]]))
    app.state.batcher.close()
    assert all(r.status_code == 200 for r in responses)
    assert _batches(app) == (4, 4)


def test_a_lone_request_does_not_wait_for_company(translator):
    app = create_app(translator, max_wait_ms=20_000)  # would be 20 s if it waited
    with _client(app) as c:
        start = time.monotonic()
        assert c.post("/translate", json={"text": ["w1 w2"]}).status_code == 200
        assert time.monotonic() - start < 10


def test_max_batch_size_caps_merged_batches(translator):
    spy = _Spy(translator)
    app = create_app(spy, max_wait_ms=300, max_batch_size=3)
    responses = asyncio.run(_post_all(app, [{"text": t} for t in REQUESTS]))
    app.state.batcher.close()
    assert all(r.status_code == 200 for r in responses)
    assert max(spy.sizes) == 3 and sum(spy.sizes) == sum(map(len, REQUESTS))


# -- binding ---------------------------------------------------------------------------------------

def test_loopback_detection():
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert not is_loopback(host), host


@pytest.mark.parametrize("host,token,warned", [("127.0.0.1", None, False), ("0.0.0.0", None, True),
                                               ("0.0.0.0", "s3cret-token", False)])
def test_serve_binds_loopback_by_default_and_warns_without_a_token(monkeypatch, capsys, translator,
                                                                   host, token, warned):
    import inspect

    import uvicorn

    import transduce.api

    runs = []
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, sockets: runs.append(sockets[0].getsockname()))
    monkeypatch.setattr(transduce.api, "load", lambda *a, **kw: translator)
    monkeypatch.delenv("TRANSDUCE_TOKEN", raising=False)
    serve("some/model", host=host, port=0, token=token)
    assert runs[0][0] == host
    assert ("warning:" in capsys.readouterr().err) == warned
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


# -- fuzzing ---------------------------------------------------------------------------------------

_junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 30), st.floats(-5, 50),
                  st.text(max_size=5), st.lists(st.integers(0, 3), max_size=2))
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False,
                                                                allow_infinity=False),
              st.text(max_size=20)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=4),
    max_leaves=15)
_near_valid = st.fixed_dictionaries(
    {"text": st.one_of(st.lists(st.one_of(st.text(max_size=60),
                                          st.lists(st.sampled_from(["w1", "w2", "w3", "w7", "zz"]),
                                                   max_size=8).map(" ".join)), max_size=5),
                       _junk)},
    optional={k: st.one_of(_junk, st.integers(0, 4)) for k in (
        "beam_size", "n_best", "max_len", "sampling", "temperature", "top_k", "top_p",
        "length_penalty", "no_repeat_ngram_size", "seed", "extra")})
_plausible = st.fixed_dictionaries(  # mostly valid: exercises decoding with odd settings
    {"text": st.lists(st.lists(st.sampled_from(["w1", "w2", "w3", "w7", "zz", "é", "\x00"]),
                               max_size=10).map(" ".join), max_size=4)},
    optional={"beam_size": st.integers(1, 5), "n_best": st.integers(1, 3),
              "max_len": st.integers(1, 25), "sampling": st.booleans(),
              "temperature": st.floats(0.01, 100), "top_k": st.integers(0, 100_000),
              "top_p": st.floats(0.0001, 1), "length_penalty": st.floats(0, 10),
              "no_repeat_ngram_size": st.integers(0, 4), "seed": st.integers(0, 2**63 - 1)})
_bodies = st.one_of(st.binary(max_size=200),
                    _json.map(lambda v: json.dumps(v).encode()),
                    _near_valid.map(lambda v: json.dumps(v).encode()),
                    _plausible.map(lambda v: json.dumps(v).encode()))
_queries = st.sampled_from(["", "?attention=true", "?attention=false", "?attention=1",
                            "?attention=junk", "?attention=", "?x=1&attention=true"])


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_bodies, query=_queries)
def test_fuzz_translate_never_answers_500(client, body, query):
    r = client.post("/translate" + query, content=body, headers=JSON)
    assert r.status_code < 500, (body, r.text)
    event(f"status {r.status_code}")
    payload = r.json()
    if r.status_code == 200:
        assert len(payload["translations"]) == len(json.loads(body)["text"])
    else:
        assert payload["error"] and payload["message"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
       path=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="?#"),
                    max_size=30))
def test_fuzz_methods_and_paths_never_answer_500(client, method, path):
    try:
        r = client.request(method, "/" + path)
    except httpx.InvalidURL:  # the client refuses to send it; nothing reaches the server
        assume(False)
    assert r.status_code < 500, (method, path, r.text)


def test_server_still_answers_after_the_fuzzing(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/translate", json={"text": ["w1 w2"]}).status_code == 200
    assert "transduce_requests_total" in client.get("/metrics").text


@pytest.mark.parametrize("wait", [float("nan"), -5, 1e300])
def test_a_batching_wait_that_is_not_a_sane_number_is_refused(translator, wait):
    with pytest.raises(TransduceError, match="max_wait_ms must be 0 to 60000"):
        create_app(translator, max_wait_ms=wait)
