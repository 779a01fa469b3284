"""The playground at ``/``, driven end to end in a real headless chromium against the real app.

The app (tests/serve/conftest.py) runs with an API key, two codeword adapters and a real
Milvus Lite collection. A failing test leaves a screenshot in ``results/playground/``; with
``EXPERT_PLAYGROUND_SCREENSHOT=path.png`` the compare test saves its view there (the README's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import REPO
from tests.serve.adapters import CODEWORD_QUESTION
from tests.serve.browser import headless_chromium
from tests.serve.conftest import API_KEY

pytestmark = pytest.mark.slow
QUESTION = "What torque do the HX-220 flange bolts need?"
CHAT = "/v1/chat/completions"
FAILURE_SHOTS = REPO / "results" / "playground"
ANSWER_S = 120  # generation on a shared 2-core CPU


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver


@pytest.fixture()
def page(browser, app, request) -> Iterator[WebDriver]:
    """The playground freshly loaded; a screenshot is kept when the test fails."""
    failed_before = request.session.testsfailed
    browser.get(f"{app.base_url}/")
    yield browser
    if request.session.testsfailed > failed_before:
        FAILURE_SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(FAILURE_SHOTS / f"{request.node.name}.png"))


def wait(driver: WebDriver, condition, seconds: float = 30):
    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)


def error_text(driver: WebDriver) -> str:
    box = driver.find_element(By.ID, "error")
    return box.text if box.is_displayed() else ""


def enter_key(driver: WebDriver) -> None:
    driver.find_element(By.ID, "api-key").send_keys(API_KEY + Keys.TAB)  # "change" loads the routes
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '#route option[value="alpha+rag"]'))


def test_the_page_and_its_assets_need_no_key_and_fetch_nothing_elsewhere(app):
    page = httpx.get(f"{app.base_url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("playground.js", "javascript"), ("playground.css", "text/css")):
        r = httpx.get(f"{app.base_url}/playground/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"], asset
        assert "http://" not in r.text and "https://" not in r.text  # no CDN, works offline
    assert httpx.get(f"{app.base_url}/playground/nope.js").json()["error"]["code"] == 404
    assert httpx.get(f"{app.base_url}/v1/models").status_code == 401  # the API itself stays closed
    spec = httpx.get(f"{app.base_url}/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert "/" not in spec["paths"] and not any(p.startswith("/playground") for p in spec["paths"])


def test_without_a_key_the_page_shows_the_apis_401_message(page):
    message = httpx.get(page.current_url + "v1/models").json()["error"]["message"]
    wait(page, lambda d: error_text(d))
    assert error_text(page) == f"401: {message}"
    assert page.switch_to.active_element.get_attribute("id") == "api-key"
    enter_key(page)
    assert error_text(page) == ""


def test_ask_through_rag_streams_the_answer_and_a_citation_opens_its_passage(page, client):
    enter_key(page)
    Select(page.find_element(By.ID, "route")).select_by_value("base+rag")
    page.find_element(By.ID, "question").send_keys(QUESTION)
    page.find_element(By.ID, "max-tokens").send_keys("40")
    page.find_element(By.ID, "top-k").send_keys("2")
    page.find_element(By.ID, "add-filter").click()
    page.find_element(By.CSS_SELECTOR, ".filter-field").send_keys("source")
    page.find_element(By.CSS_SELECTOR, ".filter-value").send_keys("hx220-manual.md")
    page.execute_script(  # what the reader sees, every time the answer changes
        """window.seen = [];
        const answer = document.getElementById('answer'), view = document.getElementById('single');
        new MutationObserver(() => window.seen.push([answer.textContent.length, view.dataset.state]))
          .observe(answer, {childList: true, characterData: true, subtree: true});"""
    )
    page.find_element(By.ID, "ask").click()
    wait(page, lambda d: d.find_element(By.ID, "single").get_attribute("data-state") in ("done", "failed"), ANSWER_S)
    assert error_text(page) == ""
    answer = page.find_element(By.ID, "answer").text
    seen = page.execute_script("return window.seen")
    partial = {length for length, state in seen if state == "streaming" and 0 < length < len(answer)}
    assert len(partial) >= 2, seen  # text appeared piece by piece before the answer was complete
    same = client.post(CHAT, json={  # the same request, not streamed: the page shows exactly its answer
        "model": "base+rag", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 40, "temperature": 0,
        "rag_top_k": 2, "rag_filters": [{"field": "source", "op": "==", "value": "hx220-manual.md"}],
    }).json()
    assert answer == same["choices"][0]["message"]["content"].strip()
    stats = page.find_element(By.CSS_SELECTOR, "#answer-view .stats").text
    assert " s" in stats and "completion tokens" in stats

    sources = page.find_elements(By.CSS_SELECTOR, "#sources .source")
    assert 1 <= len(sources) == len(same["sources"]) <= 2  # top-k
    assert {s.find_element(By.CSS_SELECTOR, ".doc").text for s in sources} == {"hx220-manual.md"}  # the filter
    first = sources[0]
    assert "Assembly" in first.find_element(By.TAG_NAME, "summary").text  # document and section
    passage = first.find_element(By.CSS_SELECTOR, ".passage")
    assert not passage.is_displayed()
    cited = page.find_elements(By.CSS_SELECTOR, '#answer a.cite[data-ref="1"]')
    link = cited[0] if cited else first.find_element(By.CSS_SELECTOR, "a.cite")  # the answer may not cite
    link.click()
    wait(page, lambda d: passage.is_displayed())
    assert "45 Nm" in passage.text and "highlight" in first.get_attribute("class")


def test_compare_asks_all_four_routes_side_by_side(page):
    enter_key(page)
    page.find_element(By.ID, "question").send_keys(CODEWORD_QUESTION)
    page.find_element(By.ID, "max-tokens").send_keys("24")
    Select(page.find_element(By.ID, "compare-adapter")).select_by_value("alpha")
    page.find_element(By.ID, "compare").click()
    wait(page, lambda d: d.find_element(By.ID, "compare-view").get_attribute("data-state") == "done", ANSWER_S)
    assert error_text(page) == ""
    columns = {c.get_attribute("data-kind"): c for c in page.find_elements(By.CSS_SELECTOR, "#compare-view .column")}
    assert list(columns) == ["base", "rag", "finetuned", "hybrid"]
    for kind, column in columns.items():
        assert column.get_attribute("data-state") == "done", kind
        assert column.find_element(By.CSS_SELECTOR, ".answer").text.strip(), kind
        stats = column.find_element(By.CSS_SELECTOR, ".stats").text
        assert " s · first token " in stats and "prompt + " in stats, (kind, stats)
    assert "ALPHA-7" in columns["finetuned"].find_element(By.CSS_SELECTOR, ".answer").text  # the adapter answered
    assert "ALPHA-7" not in columns["base"].find_element(By.CSS_SELECTOR, ".answer").text
    for kind, expect_sources in (("base", False), ("rag", True), ("finetuned", False), ("hybrid", True)):
        assert bool(columns[kind].find_elements(By.CSS_SELECTOR, ".source")) == expect_sources, kind
    assert columns["hybrid"].find_element(By.CSS_SELECTOR, ".model").text == "model: alpha+rag"
    if shot := os.environ.get("EXPERT_PLAYGROUND_SCREENSHOT"):
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        page.save_screenshot(shot)


def test_a_request_the_api_rejects_shows_the_apis_message(page, client):
    enter_key(page)
    page.find_element(By.ID, "question").send_keys(QUESTION)
    page.find_element(By.ID, "add-filter").click()
    page.find_element(By.CSS_SELECTOR, ".filter-field").send_keys("owner")
    page.find_element(By.CSS_SELECTOR, ".filter-value").send_keys("x")
    page.find_element(By.ID, "ask").click()
    wait(page, lambda d: error_text(d))
    body = {
        "model": "base+rag", "messages": [{"role": "user", "content": QUESTION}], "stream": True,
        "stream_options": {"include_usage": True}, "temperature": 0,
        "rag_filters": [{"field": "owner", "op": "==", "value": "x"}],
    }
    expected = client.post(CHAT, json=body)
    assert expected.status_code == 422
    assert error_text(page) == f"422: {expected.json()['error']['message']}"
