"""Embedders: a local sentence-transformers model (default, offline) or an OpenAI-compatible API.

Both return L2-normalised float32 vectors when ``normalize`` is on, so cosine and inner product
agree and scores from different providers stay comparable.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol, Sequence

import numpy as np

from retrieval.config import EmbedderConfig
from retrieval.errors import EmbedderError
from retrieval.tokenization import resolve_model_path


class Embedder(Protocol):
    """What the pipeline needs from an embedding model."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents/chunks; returns an array of shape (len(texts), dimension)."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """Embed one search query."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """Local model through sentence-transformers; loads offline from a folder or the HF cache."""

    def __init__(self, config: EmbedderConfig) -> None:
        # sentence-transformers pulls in bitsandbytes, which on AVX512-BF16 CPUs tries to fetch optional
        # kernels from the Hugging Face Hub at import and warns to pip-install `kernels`: noise here.
        logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(config.model)
        try:
            self._model = SentenceTransformer(path, device=config.device)
        except Exception as exc:
            raise EmbedderError(
                f"cannot load sentence-transformers model '{config.model}' ({type(exc).__name__}: {exc}); "
                "use a local folder or a model already in the HF cache (HF_HUB_OFFLINE=1 forbids downloads)"
            ) from exc
        if config.quantize == "int8":
            import torch

            self._model = torch.ao.quantization.quantize_dynamic(self._model, {torch.nn.Linear}, dtype=torch.qint8)
        self.name = config.model if config.quantize == "none" else f"{config.model}+{config.quantize}"
        self.dimension = int(self._model.get_embedding_dimension())
        self._batch_size = config.batch_size
        self._normalize = config.normalize

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=self._normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()


class OpenAICompatibleEmbedder:
    """Any ``POST {base_url}/embeddings`` API (OpenAI text-embedding-3, Jina, vLLM, TEI, ...)."""

    def __init__(self, config: EmbedderConfig) -> None:
        import httpx

        api_key = os.environ.get(config.api_key_env, "")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout_s)
        self._config = config
        self.name = config.model
        self.dimension = config.dimensions or len(self._request(["dimension probe"])[0])

    def _request(self, texts: list[str]) -> list[list[float]]:
        payload: dict[str, object] = {"model": self._config.model, "input": texts}
        if self._config.dimensions:
            payload["dimensions"] = self._config.dimensions
        try:
            response = self._client.post("/embeddings", json=payload)
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
        except Exception as exc:
            raise EmbedderError(
                f"embeddings API {self._config.base_url} failed for model '{self._config.model}': {exc}; "
                f"check embedder.base_url, the model name and the key in ${self._config.api_key_env}"
            ) from exc
        return [item["embedding"] for item in data]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        batches = [list(texts[i : i + self._config.batch_size]) for i in range(0, len(texts), self._config.batch_size)]
        rows = [vector for batch in batches for vector in self._request(batch)]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dimension)
        return _normalise(vectors) if self._config.normalize else vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()


def build_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder named by ``embedder.provider``: switching models is a config change."""
    if config.provider == "openai":
        return OpenAICompatibleEmbedder(config)
    return SentenceTransformerEmbedder(config)
