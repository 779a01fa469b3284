"""Ray Data executor: the same parse/chunk/embed functions spread over a Ray cluster.

parse_records runs as a ``flat_map`` over file tasks, embed_records inside ``map_batches`` on an
actor pool whose actors each load the embedder once. The driver streams the results into the
same DocumentWriter as the local executor, so the crash-safe commit logic exists only once.
Files are read by the workers through paths relative to the job's working directory, which is
what ``ray job submit --working-dir .`` ships to every node.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterator, Sequence

import numpy as np

import ray

from retrieval.config import RetrievalConfig
from retrieval.ingest import EMBED_NODE_KEY
from retrieval.pipeline import FileTask, embed_records, parse_records


def _parse(row: dict[str, Any], chunking: dict[str, Any], embedder: dict[str, Any]) -> list[dict[str, Any]]:
    from retrieval.config import ChunkingConfig, EmbedderConfig

    return parse_records(row, ChunkingConfig(**chunking), EmbedderConfig(**embedder))


class EmbedActor:
    """Holds one embedder for the actor's lifetime (loading it is the expensive part)."""

    def __init__(self, embedder: dict[str, Any]) -> None:
        from retrieval.config import EmbedderConfig
        from retrieval.embedding import build_embedder

        self._embedder = build_embedder(EmbedderConfig(**embedder))
        self._node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        columns = list(batch)
        size = len(batch[columns[0]]) if columns else 0
        records = [{c: _plain(batch[c][i]) for c in columns} for i in range(size)]
        embedded = embed_records(records, self._embedder)
        out = {c: [r[c] for r in embedded] for c in columns}
        out["dense"] = [np.asarray(r["dense"], dtype=np.float32) for r in embedded]
        out[EMBED_NODE_KEY] = [self._node] * len(embedded)  # the ingest report lists the nodes that embedded
        return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def run_ray(
    tasks: Sequence[FileTask], config: RetrievalConfig, address: str | None = None
) -> Iterator[list[dict[str, Any]]]:
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if not tasks:
        return
    settings = config.ingest
    chunking, embedder = config.chunking.model_dump(), config.embedder.model_dump()
    dataset = (
        ray.data.from_items([asdict(task) for task in tasks])
        .flat_map(_parse, fn_kwargs={"chunking": chunking, "embedder": embedder}, num_cpus=settings.ray_parse_cpus)
        .map_batches(
            EmbedActor,
            fn_constructor_kwargs={"embedder": embedder},
            batch_size=settings.ray_batch_size,
            batch_format="numpy",
            # a fixed pool: `concurrency=n` is only a maximum in Ray Data 2.60 (the pool starts at one actor)
            compute=ray.data.ActorPoolStrategy(size=settings.ray_embed_actors),
            num_cpus=settings.ray_actor_cpus,
            # one embedder per node where it can: the nodes' CPUs add up, and losing a node
            # loses one embedder, not the pool
            scheduling_strategy="SPREAD",
        )
    )
    for batch in dataset.iter_batches(batch_size=settings.write_batch_chunks, batch_format="numpy"):
        columns = list(batch)
        size = len(batch[columns[0]])
        yield [{c: _plain(batch[c][i]) for c in columns} for i in range(size)]
