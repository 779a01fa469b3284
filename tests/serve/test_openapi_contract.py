"""The API spec tells the truth: every check schemathesis has, run against the real app.

Generated requests (bounded: a fixed number of examples per route, a fixed seed; two workers, so the
Generator batches their requests as it batches any concurrent clients)
go through the real Gateway, Retriever and Generator on loopback; the app under test keeps
`max_tokens_limit` small so generation stays quick on CPU. The response-time check (which
`--checks all` turns on at 10 s since schemathesis 4.32) is held to the request timeout instead:
CPU latencies on a shared 2-core machine say nothing about the contract, a response that never
comes does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import API_KEY, MAX_TOKENS_LIMIT

pytestmark = pytest.mark.slow
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_spec_documents_statuses_requirements_and_this_servers_limits(app):
    spec = httpx.get(f"{app.base_url}/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    schemas = spec["components"]["schemas"]
    assert "adapter" in schemas["AdapterAskRequest"]["required"]
    assert "adapter" not in schemas["AskRequest"]["properties"]
    assert spec["paths"]["/finetuned"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AdapterAskRequest"
    }
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert {"400", "401", "404", "409", "413", "422", "429", "503", "504"} <= set(chat["responses"])
    assert chat["responses"]["429"]["headers"]["Retry-After"]
    assert chat["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    max_tokens = schemas["ChatCompletionRequest"]["properties"]["max_tokens"]["anyOf"][0]
    assert max_tokens["maximum"] == MAX_TOKENS_LIMIT
    assert chat["security"] == [{"bearer": []}] and "security" not in spec["paths"]["/healthz"]["get"]


def test_an_undeclared_method_gets_405_with_allow(client):
    r = client.delete("/v1/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == 405


def test_schemathesis_finds_nothing_with_every_check(app, tmp_path):
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG), "--no-color",
        "run", f"{app.base_url}/openapi.json", "--checks", "all",
        "-H", f"Authorization: Bearer {API_KEY}",
        "--max-examples", "6", "--seed", "1", "--workers", "2", "--request-timeout", "120",
        "--max-response-time", "120",
        "--max-failures", "20", "--report", "junit", "--report-dir", str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    (tmp_path / "schemathesis.log").write_text(done.stdout + done.stderr)  # kept beside the junit report
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout.splitlines()[-1]
