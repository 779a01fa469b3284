"""Continuous batching for serving: many requests, adapters and sampling settings in each forward pass."""

from modeling.engine.engine import EngineStats, GenerationEngine, RequestTooLargeError
from modeling.engine.request import AsyncioSink, EventSink
from modeling.engine.settings import EngineSettings

__all__ = ["AsyncioSink", "EngineSettings", "EngineStats", "EventSink", "GenerationEngine", "RequestTooLargeError"]
