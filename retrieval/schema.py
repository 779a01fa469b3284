"""Milvus schemas of the two collections behind one knowledge base.

``<name>`` holds the chunks: text (BM25-analysed), dense vector, BM25 sparse vector filled by a
Milvus Function, and the citation fields. ``<name>_manifest`` holds one row per document (the
commit record of the crash-safe ingest protocol, see retrieval/ingest.py) plus one info row that
remembers which embedder built the collection.
"""

from __future__ import annotations

from pymilvus import DataType, Function, FunctionType, MilvusClient
from pymilvus.milvus_client.index import IndexParams
from pymilvus.orm.schema import CollectionSchema

MAX_TEXT_BYTES = 65_535
MAX_SOURCE_BYTES = 4_096
MAX_LABEL_BYTES = 1_024
CHUNK_OUTPUT_FIELDS = [
    "id", "doc_id", "version", "source", "file_type", "title", "section",
    "page", "row", "chunk_index", "start", "end", "text", "meta",
]
MANIFEST_FIELDS = ["doc_id", "source", "version", "state", "chunk_count", "file_type", "title", "updated_at"]
INFO_ROW_ID = "__collection_info__"


def manifest_name(collection: str) -> str:
    return f"{collection}_manifest"


# BM25 tokenisation: lower-cased words without English stop words, so "my ... and ... on" in a
# question does not make every chunk a lexical match (which drowned the dense route's paraphrase
# matches in hybrid RRF ranking, and made BM25 walk most posting lists). The words are listed
# (Lucene's English set plus pronouns and question words) because Milvus Lite does not know
# Milvus's "_english_" alias; the same list works on a Milvus server.
STOP_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with i me my we our you your he him his she her its them do does did what which who whom how "
    "when where why can could would should from has have had been being am were so than too very s t"
).split()
BM25_ANALYZER = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": STOP_WORDS}]}


def chunk_schema(dimension: int) -> tuple[CollectionSchema, IndexParams]:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=128)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE_BYTES)
    schema.add_field("file_type", DataType.VARCHAR, max_length=32)
    schema.add_field("title", DataType.VARCHAR, max_length=MAX_LABEL_BYTES)
    schema.add_field("section", DataType.VARCHAR, max_length=MAX_LABEL_BYTES)
    schema.add_field("page", DataType.INT64)
    schema.add_field("row", DataType.INT64)
    schema.add_field("chunk_index", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, enable_analyzer=True, analyzer_params=BM25_ANALYZER)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(name="text_bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"])
    )
    index = MilvusClient.prepare_index_params()
    index.add_index(field_name="dense", index_type="AUTOINDEX", metric_type="COSINE")
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return schema, index


def manifest_schema() -> tuple[CollectionSchema, IndexParams]:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE_BYTES)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("state", DataType.VARCHAR, max_length=16)
    schema.add_field("chunk_count", DataType.INT64)
    schema.add_field("file_type", DataType.VARCHAR, max_length=32)
    schema.add_field("title", DataType.VARCHAR, max_length=MAX_LABEL_BYTES)
    schema.add_field("updated_at", DataType.INT64)
    # Milvus requires a vector field in every collection; this one is never searched.
    schema.add_field("_unused_vector", DataType.FLOAT_VECTOR, dim=2)
    index = MilvusClient.prepare_index_params()
    index.add_index(field_name="_unused_vector", index_type="AUTOINDEX", metric_type="L2")
    return schema, index


def clip_utf8(text: str, max_bytes: int) -> str:
    """Truncate to a VARCHAR's byte limit without splitting a UTF-8 character."""
    encoded = text.encode("utf-8")
    return text if len(encoded) <= max_bytes else encoded[:max_bytes].decode("utf-8", errors="ignore")
