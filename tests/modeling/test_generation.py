"""Chat formatting through the tokenizer's template and batched generation on the real offline Phi-3."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from modeling import (
    BUILTIN_MODEL_ID,
    GenerationParams,
    ModelLayerError,
    ModelSettings,
    PromptTooLongError,
    encode_chat,
    generate_chat,
    load_base_model,
    render_chat,
)

# The chat template that ships with microsoft/Phi-3-mini-4k-instruct's tokenizer.
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def model(builtin_dir):
    return load_base_model(ModelSettings(name_or_path=BUILTIN_MODEL_ID)).eval()


def test_phi3_tokenizers_get_phi3_format(builtin_tokenizer):
    tok = copy.deepcopy(builtin_tokenizer)
    tok.chat_template = PHI3_TEMPLATE
    text = render_chat(tok, [{"role": "system", "content": "Be brief."}, *QUESTION])
    assert text == "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is the capital of France?<|end|>\n<|assistant|>\n"


def test_builtin_uses_its_own_chatml_template(builtin_tokenizer):
    text = render_chat(builtin_tokenizer, QUESTION)
    assert text.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    ids = encode_chat(builtin_tokenizer, QUESTION)
    assert builtin_tokenizer.decode(ids) == text


def test_bad_chats_are_rejected(builtin_tokenizer):
    with pytest.raises(ValidationError):
        render_chat(builtin_tokenizer, [{"role": "wizard", "content": "hi"}])
    with pytest.raises(ModelLayerError, match="at least one message"):
        render_chat(builtin_tokenizer, [])
    tok = copy.deepcopy(builtin_tokenizer)
    tok.chat_template = None
    with pytest.raises(ModelLayerError, match="no chat template"):
        render_chat(tok, QUESTION)


def test_greedy_answer_and_batching_equal_single_requests(model, builtin_tokenizer):
    long_chat = [{"role": "user", "content": "Please list three primary colors, separated by commas."}]
    params = GenerationParams(max_new_tokens=16)
    batched = generate_chat(model, builtin_tokenizer, [QUESTION, long_chat], params)
    single = [generate_chat(model, builtin_tokenizer, [c], params)[0] for c in (QUESTION, long_chat)]
    assert "Paris" in batched[0].text
    assert [c.text for c in batched] == [c.text for c in single]
    assert batched[0].finish_reason == "stop" and batched[0].completion_tokens < 16
    assert batched[0].prompt_tokens == len(encode_chat(builtin_tokenizer, QUESTION))


def test_stop_strings_and_length_limit(model, builtin_tokenizer):
    (stopped,) = generate_chat(model, builtin_tokenizer, [QUESTION], GenerationParams(max_new_tokens=16, stop=("Paris",)))
    assert "Paris" not in stopped.text and stopped.finish_reason == "stop"
    (cut,) = generate_chat(model, builtin_tokenizer, [QUESTION], GenerationParams(max_new_tokens=2))
    assert cut.completion_tokens == 2 and cut.finish_reason == "length"


def test_sampling_is_reproducible_with_a_seed(model, builtin_tokenizer):
    params = GenerationParams(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=3)
    first = generate_chat(model, builtin_tokenizer, [QUESTION], params)
    assert first == generate_chat(model, builtin_tokenizer, [QUESTION], params)


def test_prompt_longer_than_context_is_a_clear_error(model, builtin_tokenizer):
    huge = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(PromptTooLongError, match="model's context is 8192 tokens"):
        generate_chat(model, builtin_tokenizer, [huge], GenerationParams(max_new_tokens=8))


@pytest.mark.parametrize("bad", [{"temperature": 5}, {"max_new_tokens": 0}, {"top_p": 0}, {"unknown": 1}])
def test_generation_params_are_bounded(bad):
    with pytest.raises(ValidationError):
        GenerationParams(**bad)
