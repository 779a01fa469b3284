"""Typed errors of the model layer.

Each error says what went wrong *and* how to fix it, so a user reading a Ray job log
does not have to open the source to know what to change.
"""

from __future__ import annotations


class ModelLayerError(Exception):
    """Base class for every error the model layer raises on purpose."""


class ModelNotFoundError(ModelLayerError):
    """A base model id or path cannot be resolved offline or on disk."""


class AdapterNotFoundError(ModelLayerError):
    """An adapter name is not in the registry."""

    def __init__(self, name: str, known: list[str], registry: str) -> None:
        listing = ", ".join(known) if known else "(none yet: train one with `python -m train`)"
        super().__init__(f"adapter {name!r} not found in registry {registry}; known adapters: {listing}")
        self.name = name
        self.known = known
        self.registry = registry

    def __reduce__(self):  # picklable with its fields, so it crosses Ray process boundaries intact
        return (type(self), (self.name, self.known, self.registry))


class InvalidAdapterNameError(ModelLayerError):
    """An adapter name that could escape the registry folder or is not a plain name."""


class UnsafeAdapterFormatError(ModelLayerError):
    """An adapter folder holds pickled weights (.bin/.pt) instead of safetensors."""



class AdapterMismatchError(ModelLayerError):
    """An adapter's LoRA weights do not fit the base model's layers (trained for another base)."""


class PromptTooLongError(ModelLayerError):
    """Prompt plus requested new tokens do not fit the model's context window."""

    def __init__(self, prompt_tokens: int, max_new_tokens: int, context: int) -> None:
        super().__init__(
            f"prompt has {prompt_tokens} tokens and {max_new_tokens} new tokens were requested, but the "
            f"model's context is {context} tokens; shorten the prompt or lower max_tokens"
        )
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.context = context

    def __reduce__(self):
        return (type(self), (self.prompt_tokens, self.max_new_tokens, self.context))


class EngineOverloadedError(ModelLayerError):
    """The generation engine's waiting queue is full: the caller should retry later (HTTP 429)."""

    def __init__(self, queued: int, limit: int, retry_after_s: float) -> None:
        super().__init__(
            f"the generator is overloaded ({queued} requests already wait, the limit is {limit}); "
            f"retry in about {retry_after_s:.0f}s, or add Generator replicas"
        )
        self.queued = queued
        self.limit = limit
        self.retry_after_s = retry_after_s

    def __reduce__(self):
        return (type(self), (self.queued, self.limit, self.retry_after_s))


class GenerationTimeoutError(ModelLayerError):
    """A request ran past its deadline; its batch row was freed (HTTP 504)."""

    def __init__(self, timeout_s: float, completion_tokens: int) -> None:
        super().__init__(
            f"generation took longer than {timeout_s:g}s and was stopped after {completion_tokens} tokens; "
            "ask for fewer max_tokens or retry"
        )
        self.timeout_s = timeout_s
        self.completion_tokens = completion_tokens

    def __reduce__(self):
        return (type(self), (self.timeout_s, self.completion_tokens))


class EngineStoppedError(ModelLayerError):
    """The generation engine is not running (it was stopped, or its loop failed); HTTP 503."""


class AdapterIntegrityError(ModelLayerError):
    """An adapter fetched from object storage does not match its published checksums."""


class RegistryUnavailableError(ModelLayerError):
    """The adapter registry's storage cannot be read (missing bucket, unreachable endpoint, credentials)."""
