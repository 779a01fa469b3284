"""The main job: from a company's documents to a served industry expert, in one command.

``python -m pipeline`` (what ``make demo`` runs) chains the packages, each through its public
API: ``retrieval`` ingests the documents into Milvus, ``train.raft``/``train.qa`` turn the
training questions into RAFT and plain instruction data, ``train`` fine-tunes two LoRA adapters
with Ray Train, ``serve`` starts the Serve app, and ``evaluation`` compares base, RAG,
fine-tuned and hybrid on the held-out questions. Nothing here re-implements a step; it only
decides what is already built and can be reused.
"""

from pipeline.settings import PipelineSettings, load_settings

__all__ = ["PipelineSettings", "load_settings"]
