"""Everything the workers train on, built once on the driver before any worker starts.

Reading, checking and tokenizing on the driver means a malformed line stops the run with
its ``file:line`` before Ray or DeepSpeed spin up, and the workers receive ready rows
through Ray's object store instead of each re-reading the files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from transformers import PreTrainedTokenizerBase

from fingerprint import Fingerprint
from train.errors import DataFormatError
from train.packing import Row, one_per_row, pack
from train.recipe import Recipe
from train.records import read_records
from train.tokenization import tokenize_chat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    train_rows: list[Row]
    val_rows: list[Row]
    pad_token_id: int
    fingerprint: str
    stats: dict = field(default_factory=dict)


def data_fingerprint(recipe: Recipe, tokenizer: PreTrainedTokenizerBase) -> str:
    """Hash of the files' bytes and of everything that decides how they become rows.

    Paths are not hashed: neither the data files' nor the model's resolved folder (the
    recipe's model name is), so a moved checkout or cache keeps the fingerprint.
    """
    settings = recipe.data.model_dump_json(exclude={"train_files"})
    fp = Fingerprint().files(recipe.data.train_files)
    return str(fp.text(f"{settings}|{recipe.seed}|{recipe.model.name_or_path}|{tokenizer.chat_template}"))


def split_validation(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of (train, validation) examples: a seeded random ``fraction`` is held out."""
    if fraction == 0 or count < 2:
        return list(range(count)), []
    held_out = min(count - 1, max(1, round(count * fraction)))
    order = np.random.default_rng([seed, 1]).permutation(count)
    return sorted(order[held_out:].tolist()), sorted(order[:held_out].tolist())


def truncation_warning(cut: int, total: int, max_seq_len: int, longest: int) -> str:
    """Why a cut example matters: the window ends inside its assistant turn, so the model is
    trained on replies without their ending (for RAFT rows: the quote without the short answer)."""
    return (
        f"{cut} of {total} example(s) are longer than data.max_seq_len={max_seq_len} and train on a reply "
        f"cut off at the window's end; the longest is {longest} tokens: raise data.max_seq_len to {longest} "
        "(or shorten the examples: fewer or smaller passages) to train on whole replies"
    )


def build_training_data(recipe: Recipe, tokenizer: PreTrainedTokenizerBase) -> TrainingData:
    """Read, check, tokenize, split and pack the recipe's data."""
    cfg = recipe.data
    records = read_records(cfg.train_files, cfg.format)
    examples = [tokenize_chat(tokenizer, r.messages, cfg.max_seq_len) for r in records]
    kept = [e for e in examples if e.num_targets > 0]
    dropped = len(examples) - len(kept)
    if not kept:
        raise DataFormatError(
            f"every example's assistant turns start beyond data.max_seq_len={cfg.max_seq_len} tokens; raise max_seq_len"
        )
    if dropped:
        log.warning("%d example(s) dropped: their assistant turns start beyond max_seq_len=%d", dropped, cfg.max_seq_len)
    longest = max(e.full_length for e in examples)
    cut = sum(e.truncated for e in kept)
    if cut:
        log.warning(truncation_warning(cut, len(examples), cfg.max_seq_len, longest))
    train_idx, val_idx = split_validation(len(kept), cfg.val_fraction, recipe.seed)
    to_rows = (lambda ex: pack(ex, cfg.max_seq_len)) if cfg.packing else one_per_row
    train_rows = to_rows([kept[i] for i in train_idx])
    val_rows = to_rows([kept[i] for i in val_idx]) if val_idx else []
    real = sum(len(r) for r in train_rows)
    stats = {
        "examples": len(examples),
        "train_examples": len(train_idx),
        "val_examples": len(val_idx),
        "truncated": sum(e.truncated for e in examples),
        "longest_example_tokens": longest,
        "dropped": dropped,
        "train_rows": len(train_rows),
        "train_tokens": real,
        "train_target_tokens": sum(r.num_targets for r in train_rows),
        "row_fill": round(real / (len(train_rows) * cfg.max_seq_len), 4),
    }
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return TrainingData(train_rows, val_rows, int(pad), data_fingerprint(recipe, tokenizer), stats)
