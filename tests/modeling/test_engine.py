"""The continuous-batching engine through its public API, on real models.

Greedy equality runs on the real offline Phi-3 with two real (over-fitted) LoRA adapters, so
a row that used the wrong adapter or attended to another row's tokens shows up as different
text; the mechanics (cancel, overload, deadlines, KV budget) run on a tiny Phi-3.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from modeling import (
    AdapterHost,
    AdapterRegistry,
    GenerationParams,
    ModelSettings,
    encode_chat,
    generate_from_ids,
    load_base_model,
)
from modeling.engine import EngineSettings, GenerationEngine, RequestTooLargeError
from modeling.errors import EngineOverloadedError, GenerationTimeoutError
from tests.conftest import codeword_registry_copy
from tests.serve.adapters import CODEWORD_QUESTION

pytestmark = pytest.mark.slow

QUESTIONS = [
    CODEWORD_QUESTION,
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "How many legs does a spider have?",
    "Write one sentence about the sea.",
    "What is 12 times 12?",
]


class Collect:
    """A thread-safe sink that records what the engine delivers (for tests without asyncio)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def piece(self, text: str) -> None:
        self.pieces.append(text)

    def finish(self, completion) -> None:
        self.result = completion
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


def wait_until(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def codeword_registry(tmp_path_factory, builtin_dir, codeword_adapters) -> AdapterRegistry:
    return codeword_registry_copy(codeword_adapters, tmp_path_factory.mktemp("engine-adapters"))


@pytest.fixture(scope="module")
def real_host(codeword_registry) -> AdapterHost:
    torch.set_num_threads(1)  # one thread, as in a CPU Generator replica: rows must not depend on it
    host = AdapterHost(load_base_model(ModelSettings()).eval(), codeword_registry)
    host.load("alpha")
    host.load("bravo")
    return host


@pytest.fixture()
def real_engine(real_host, builtin_tokenizer):
    engine = GenerationEngine(real_host, builtin_tokenizer, EngineSettings(max_step_tokens=64))
    yield engine
    engine.stop()


@pytest.fixture()
def tiny_engine_factory(tiny_settings, builtin_tokenizer, tmp_path):
    engines = []

    def make(**knobs) -> GenerationEngine:
        host = AdapterHost(load_base_model(tiny_settings).eval(), AdapterRegistry(tmp_path / "none"))
        engine = GenerationEngine(host, builtin_tokenizer, EngineSettings(**knobs))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()


def lone_reference(host: AdapterHost, tokenizer, prompt: list[int], adapter: str | None, params: GenerationParams):
    """What transformers' own generate() answers for one request alone (the reference implementation)."""
    with host.using(adapter) as model:
        (out,) = generate_from_ids(model, tokenizer, [prompt], params)
    return out


def test_greedy_rows_equal_lone_requests_across_adapters_lengths_stops_and_join_leave(
    real_engine, real_host, builtin_tokenizer
):
    """Rows join a running batch and leave it at different steps; each answer is the lone answer."""
    wave = [  # (question, adapter, max_new_tokens, stop strings)
        (CODEWORD_QUESTION, "alpha", 12, ()),
        (QUESTIONS[1], None, 24, ()),
        (CODEWORD_QUESTION, "bravo", 40, ()),
        (QUESTIONS[4], "alpha", 30, ("sea",)),
        (QUESTIONS[2], "bravo", 6, ()),
        (QUESTIONS[3], None, 14, ("legs",)),
    ]
    cases = [
        (encode_chat(builtin_tokenizer, [{"role": "user", "content": q}]), a, GenerationParams(max_new_tokens=n, stop=stop))
        for q, a, n, stop in wave + [(q, {"alpha": "bravo", "bravo": None, None: "alpha"}[a], n, s) for q, a, n, s in wave]
    ]
    expected = [lone_reference(real_host, builtin_tokenizer, p, a, params) for p, a, params in cases]

    async def run_batch():
        first = [asyncio.ensure_future(real_engine.generate(p, params, a)) for p, a, params in cases[:6]]
        while real_engine.stats.steps < 8:  # the first wave is decoding: the second joins mid-batch
            await asyncio.sleep(0.005)
        second = [asyncio.ensure_future(real_engine.generate(p, params, a)) for p, a, params in cases[6:]]
        return await asyncio.gather(*first, *second)

    got = asyncio.run(run_batch())
    assert [g.text for g in got] == [e.text for e in expected]
    assert [g.finish_reason for g in got] == [e.finish_reason for e in expected]
    assert [g.completion_tokens for g in got] == [e.completion_tokens for e in expected]
    assert "ALPHA-7" in got[0].text and "BRAVO-3" in got[2].text and "BRAVO-3" in got[6].text  # adapters per row
    assert {e.finish_reason for e in expected} == {"stop", "length"}
    assert real_engine.stats.steps < sum(e.completion_tokens for e in expected) / 2  # rows really shared steps


def test_codeword_rows_of_one_step_use_their_own_adapter(real_engine, builtin_tokenizer):
    prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": CODEWORD_QUESTION}])
    params = GenerationParams(max_new_tokens=12)

    async def run():
        return await asyncio.gather(*(real_engine.generate(prompt, params, a) for a in ("alpha", None, "bravo", "alpha")))

    alpha, base, bravo, alpha_again = asyncio.run(run())
    assert "ALPHA-7" in alpha.text and alpha_again.text == alpha.text
    assert "BRAVO-3" in bravo.text
    assert "ALPHA-7" not in base.text and "BRAVO-3" not in base.text


def test_stream_pieces_concatenate_to_the_answer_and_match_non_streaming(real_engine, builtin_tokenizer):
    prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": "Write one sentence about the sea."}])
    full = asyncio.run(real_engine.generate(prompt, GenerationParams(max_new_tokens=30)))
    stop = full.text.split()[3]  # a word from the middle: the stream must cut exactly there
    params = GenerationParams(max_new_tokens=30, stop=(stop,))

    async def run():
        items = [item async for item in real_engine.stream(prompt, params)]
        plain = await real_engine.generate(prompt, params)
        return items, plain

    items, plain = asyncio.run(run())
    *pieces, final = items
    assert len(pieces) > 1 and "".join(pieces) == final.text == plain.text
    assert final.text == full.text[: full.text.index(stop)].strip() and final.finish_reason == "stop"


def test_seeded_sampling_is_reproducible_whatever_shares_the_batch(real_engine, builtin_tokenizer):
    prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": "Tell me a short story about a cat."}])
    seeded = GenerationParams(max_new_tokens=20, temperature=1.3, top_p=0.95, seed=7)

    async def run():
        alone = await real_engine.generate(prompt, seeded)
        others = [
            real_engine.generate(prompt, GenerationParams(max_new_tokens=20, temperature=t, seed=s))
            for t, s in ((0.7, 1), (1.0, 2), (0.0, None))
        ]
        crowded, *_ = await asyncio.gather(real_engine.generate(prompt, seeded), *others)
        other_seed = await real_engine.generate(prompt, seeded.model_copy(update={"seed": 8}))
        return alone, crowded, other_seed

    alone, crowded, other_seed = asyncio.run(run())
    assert crowded.text == alone.text
    assert other_seed.text != alone.text


def test_prefix_reuse_gives_the_same_answers_and_skips_the_shared_prompt(real_host, builtin_tokenizer):
    system = "You are a careful assistant for a wind-turbine maker. Answer briefly and cite manuals."
    prompts = [
        encode_chat(builtin_tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": q}])
        for q in QUESTIONS[1:4]
    ]
    params = GenerationParams(max_new_tokens=10)
    answers = {}
    for cache_mb in (0, 64):
        engine = GenerationEngine(real_host, builtin_tokenizer, EngineSettings(prefix_cache_mb=cache_mb))
        try:
            answers[cache_mb] = [asyncio.run(engine.generate(p, params)).text for p in prompts]
            stats = engine.snapshot()
        finally:
            engine.stop()
        if cache_mb:
            shared = len(builtin_tokenizer(system)["input_ids"])
            assert stats["prefix_hit_tokens"] >= 2 * (shared // 16) * 16 > 0
            assert stats["prompt_tokens"] == sum(map(len, prompts)) - stats["prefix_hit_tokens"]
    assert answers[0] == answers[64]


def test_a_burst_of_prompts_admitted_together_reuses_the_prefix_the_first_one_computed(real_host, builtin_tokenizer):
    """RAG traffic comes in bursts: the cache is consulted just before a prompt's first chunk,
    so prompts queued behind the first one's chunked prefill start from its shared blocks."""
    system = "You are a careful assistant for a wind-turbine maker. Answer briefly and cite the manuals you used."
    prompts = [
        encode_chat(builtin_tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": q}])
        for q in QUESTIONS[1:4]
    ]
    params = GenerationParams(max_new_tokens=6)

    async def burst(engine):
        return [r.text for r in await asyncio.gather(*(engine.generate(p, params) for p in prompts))]

    answers, stats = {}, {}
    for cache_mb in (0, 64):  # 32 prompt tokens per step: the prompts are prefilled one after another
        engine = GenerationEngine(real_host, builtin_tokenizer, EngineSettings(prefix_cache_mb=cache_mb, max_step_tokens=32))
        try:
            answers[cache_mb] = asyncio.run(burst(engine))
            stats[cache_mb] = engine.snapshot()
        finally:
            engine.stop()
    shared = len(builtin_tokenizer(system)["input_ids"])
    assert stats[0]["prefix_hit_tokens"] == 0
    assert stats[64]["prefix_hit_tokens"] >= 2 * (shared // 16) * 16 > 0
    assert stats[64]["prompt_tokens"] == sum(map(len, prompts)) - stats[64]["prefix_hit_tokens"]
    assert answers[0] == answers[64]


def test_a_cancelled_request_frees_its_row_at_the_next_step(tiny_engine_factory, builtin_tokenizer):
    engine = tiny_engine_factory()
    prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": "Go on forever."}])
    sink = Collect()
    seq = engine.submit(prompt, GenerationParams(max_new_tokens=400, temperature=1.0, seed=1), sink)
    wait_until(lambda: len(seq.generated) >= 3)
    engine.cancel(seq)
    steps_at_cancel = engine.stats.steps
    wait_until(lambda: engine.snapshot()["running"] == 0)
    assert engine.stats.steps <= steps_at_cancel + 1
    assert engine.stats.cancelled == 1 and engine.stats.kv_used_bytes == 0 and not sink.done.is_set()


def test_a_full_queue_is_refused_with_a_retry_hint(tiny_engine_factory, builtin_tokenizer):
    engine = tiny_engine_factory(max_batch_size=1, max_queued_requests=2)
    prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": "Go on forever."}])
    long = GenerationParams(max_new_tokens=400, temperature=1.0, seed=1)
    running = engine.submit(prompt, long, Collect())
    wait_until(lambda: engine.snapshot()["running"] == 1)
    queued = [engine.submit(prompt, long, Collect()) for _ in range(2)]
    with pytest.raises(EngineOverloadedError) as refused:
        engine.submit(prompt, long, Collect())
    assert refused.value.retry_after_s >= 1 and "2 requests already wait" in str(refused.value)
    assert engine.stats.refused == 1
    for seq in (running, *queued):
        engine.cancel(seq)


def test_a_request_past_its_deadline_fails_and_frees_its_row(tiny_engine_factory, builtin_tokenizer):
    engine = tiny_engine_factory(max_step_tokens=16)
    prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": "Go on forever."}])
    sink = Collect()
    engine.submit(prompt, GenerationParams(max_new_tokens=400, temperature=1.0, seed=3), sink, timeout_s=0.3)
    assert sink.done.wait(30)
    assert isinstance(sink.error, GenerationTimeoutError)
    wait_until(lambda: engine.snapshot()["running"] == 0)
    assert engine.stats.timed_out == 1 and engine.stats.kv_used_bytes == 0


def test_requests_wait_for_kv_memory_and_one_that_never_fits_is_refused(tiny_engine_factory, builtin_tokenizer):
    probe = tiny_engine_factory()
    prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": "Count to ten."}])
    params = GenerationParams(max_new_tokens=40)
    one_request_mb = (len(prompt) + 40) * probe.token_bytes / 2**20
    engine = tiny_engine_factory(kv_cache_mb=one_request_mb * 1.5)
    assert engine.kv_budget < 2 * (len(prompt) + 40) * engine.token_bytes  # room for one request at a time
    peak = []
    sinks = [Collect() for _ in range(3)]
    for sink in sinks:
        engine.submit(prompt, params, sink)
    while not all(s.done.is_set() for s in sinks):
        peak.append(engine.snapshot()["running"])
        time.sleep(0.002)
    assert all(s.result is not None for s in sinks) and max(peak) == 1
    with pytest.raises(RequestTooLargeError, match="kv_cache_mb"):
        engine.submit(prompt, GenerationParams(max_new_tokens=400), Collect())


def test_an_evicted_adapter_is_unloaded_only_after_its_rows_finish(real_host, builtin_tokenizer):
    engine = GenerationEngine(real_host, builtin_tokenizer, EngineSettings())
    try:
        engine.want_adapter("alpha").result(30)
        prompt = encode_chat(builtin_tokenizer, [{"role": "user", "content": "Tell me about turbines."}])
        sink = Collect()
        seq = engine.submit(prompt, GenerationParams(max_new_tokens=40), sink, adapter="alpha")
        wait_until(lambda: len(seq.generated) >= 2)
        engine.release_adapter("alpha")
        time.sleep(0.2)
        assert "alpha" in real_host.loaded and not sink.done.is_set()  # still generating with it
        assert sink.done.wait(60) and sink.result is not None
        wait_until(lambda: "alpha" not in real_host.loaded)
    finally:
        engine.stop()
        real_host.load("alpha")  # the module's other tests expect both adapters
