"""The HTTP API through a real Serve app: OpenAI client, httpx, adapters, errors, auth."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.serve.adapters import CODEWORD_QUESTION
from tests.serve.conftest import API_KEY

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": CODEWORD_QUESTION}]


@pytest.fixture()
def oai(app) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=180)


def test_healthz_needs_no_key(app):
    assert httpx.get(f"{app.base_url}/healthz").json() == {"status": "ok"}


def test_model_list_has_base_adapters_and_rag_variants(oai):
    ids = {m.id for m in oai.models.list()}
    assert {"base", "alpha", "bravo", "base+rag", "alpha+rag", "bravo+rag"} <= ids


def test_openai_chat_with_base_and_adapters(oai):
    base = oai.chat.completions.create(model="base", messages=ASK, max_tokens=12)
    alpha = oai.chat.completions.create(model="alpha", messages=ASK, max_tokens=12)
    assert "ALPHA-7" in alpha.choices[0].message.content
    assert "ALPHA-7" not in base.choices[0].message.content and "BRAVO-3" not in base.choices[0].message.content
    assert alpha.usage.completion_tokens > 0 and alpha.choices[0].finish_reason == "stop"


def test_openai_streaming_equals_non_streaming(oai):
    full = oai.chat.completions.create(model="bravo", messages=ASK, max_tokens=12)
    chunks = list(
        oai.chat.completions.create(
            model="bravo", messages=ASK, max_tokens=12, stream=True, stream_options={"include_usage": True}
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces).strip() == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens  # the include_usage chunk


def test_streaming_cuts_at_a_stop_string_like_non_streaming(oai):
    full = oai.chat.completions.create(model="alpha", messages=ASK, max_tokens=12).choices[0].message.content
    stop = full.split()[2]  # a word in the middle of "The codeword is ALPHA-7."
    cut = oai.chat.completions.create(model="alpha", messages=ASK, max_tokens=12, stop=[stop])
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in oai.chat.completions.create(model="alpha", messages=ASK, max_tokens=12, stop=[stop], stream=True)
    )
    assert stop not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"
    assert streamed.strip() == cut.choices[0].message.content == full[: full.index(stop)].strip()


def test_openai_text_parts_and_developer_role_are_accepted(oai):
    parts = [{"type": "text", "text": CODEWORD_QUESTION}]
    out = oai.chat.completions.create(
        model="alpha", messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": parts}],
        max_tokens=12,
    )
    assert out.choices[0].message.content


def test_interleaved_concurrent_requests_get_their_own_adapter(client):
    names = ["alpha", "bravo"] * 6
    expected = {"alpha": "ALPHA-7", "bravo": "BRAVO-3"}

    def ask(name: str) -> tuple[str, str]:
        r = client.post("/v1/chat/completions", json={"model": name, "messages": ASK, "max_tokens": 12})
        assert r.status_code == 200, r.text
        return name, r.json()["choices"][0]["message"]["content"]

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        answers = list(pool.map(ask, names))
    for name, text in answers:
        assert expected[name] in text, (name, text)


def test_finetuned_route(client):
    r = client.post("/finetuned", json={"question": CODEWORD_QUESTION, "adapter": "alpha", "max_tokens": 12})
    body = r.json()
    assert r.status_code == 200 and "ALPHA-7" in body["answer"] and body["sources"] == []
    assert body["model"] == body["adapter"] == "alpha" and body["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert body["timings"]["total_s"] > 0 and body["timings"]["retrieval_s"] < body["timings"]["total_s"]
    no_adapter = client.post("/finetuned", json={"question": CODEWORD_QUESTION})
    ghost = client.post("/finetuned", json={"question": CODEWORD_QUESTION, "adapter": "ghost"})
    assert no_adapter.status_code == 422 and ghost.status_code == 404


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"model": "ghost", "messages": ASK}}, 404, "known adapters: alpha, bravo"),
        ({"json": {"model": "../../etc/passwd", "messages": ASK}}, 400, "invalid adapter name"),
        ({"json": {"model": "base", "messages": [{"role": "user", "content": "word " * 9000}]}}, 400, "context is 8192"),
        ({"json": {"model": "base", "messages": ASK, "temperature": 7}}, 422, "temperature"),
        ({"json": {"model": "base", "messages": ASK, "max_tokens": 100000}}, 422, "limit of 48"),
        ({"json": {"model": "base", "messages": []}}, 422, "messages"),
        ({"json": {"model": "base", "messages": [{"role": "robot", "content": "x"}]}}, 422, "role"),
        ({"json": {"model": "base", "messages": ASK, "top_p": 0}}, 422, "top_p"),
        ({"json": {"model": "base", "messages": ASK, "max_tokens": 0}}, 422, "max_tokens"),
        ({"json": {"model": "base", "messages": ASK, "stop": list("abcdefghij")}}, 422, "stop"),
        ({"json": {"model": "base", "messages": ASK, "n": 2}}, 422, "n:"),
        ({"json": {"model": "base", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}}, 422, "text"),
        ({"json": {"model": "base", "messages": [{"role": "system", "content": "x"}]}}, 422, "user message"),
        ({"json": ["not", "an", "object"]}, 422, "valid dictionary"),
        ({"content": b"x" * 300_000, "headers": {"content-type": "application/json"}}, 413, "larger than"),
        ({"content": iter([b"x" * 50_000] * 6), "headers": {"content-type": "application/json"}}, 413, "larger than"),
    ],
    ids=[
        "malformed-json", "unknown-adapter", "path-adapter", "too-long", "temperature", "max-tokens", "no-messages",
        "bad-role", "top-p", "zero-tokens", "too-many-stops", "n", "image-part", "no-user", "not-an-object",
        "oversized", "oversized-chunked",
    ],
)
def test_bad_input_gets_the_right_4xx(client, request_kwargs, status, message):
    r = client.post("/v1/chat/completions", **request_kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def test_streaming_errors_arrive_before_the_stream(client):
    ghost = client.post("/v1/chat/completions", json={"model": "ghost", "messages": ASK, "stream": True})
    long = [{"role": "user", "content": "word " * 9000}]
    too_long = client.post("/v1/chat/completions", json={"model": "base", "messages": long, "stream": True})
    assert ghost.status_code == 404 and too_long.status_code == 400


def test_unknown_routes_and_methods_get_json_errors(client):
    missing = client.get("/v2/nothing")
    wrong_method = client.get("/v1/chat/completions")
    assert missing.status_code == 404 and "no route" in missing.json()["error"]["message"]
    assert wrong_method.status_code == 405 and "GET" in wrong_method.json()["error"]["message"]


def test_openai_client_sees_typed_errors(oai):
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="ghost", messages=ASK)


def test_auth_is_enforced_when_keys_are_configured(app):
    no_key = httpx.post(f"{app.base_url}/v1/chat/completions", json={"model": "base", "messages": ASK}, timeout=60)
    wrong = httpx.get(f"{app.base_url}/v1/models", headers={"Authorization": "Bearer nope"}, timeout=60)
    not_ascii = httpx.get(f"{app.base_url}/v1/models", headers={"Authorization": "Bearer \u00e9t\u00e9".encode()}, timeout=60)
    other_scheme = httpx.get(f"{app.base_url}/v1/models", headers={"Authorization": f"Basic {API_KEY}"}, timeout=60)
    for response in (no_key, wrong, not_ascii, other_scheme):
        assert response.status_code == 401
    assert "API key" in json.loads(no_key.text)["error"]["message"]
    assert httpx.post(f"{app.base_url}/search", json={"query": "x"}, timeout=60).status_code == 401
    good = httpx.get(f"{app.base_url}/v1/models", headers={"Authorization": f"bearer {API_KEY}"}, timeout=60)
    assert good.status_code == 200
