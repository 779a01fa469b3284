"""``python -m modeling``: ask the model a question, build the offline default, list or merge adapters."""

from __future__ import annotations

import argparse
import json
import sys
import time

from modeling.adapters import AdapterHost, AdapterRegistry
from modeling.builtin import BUILTIN_MODEL_ID, ensure_builtin_model
from modeling.errors import ModelLayerError
from modeling.export import merge_and_export
from modeling.generation import GenerationParams, generate_chat
from modeling.loading import load_base_model, load_tokenizer
from modeling.settings import ModelSettings

DEFAULT_REGISTRY = "data/adapters"


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=BUILTIN_MODEL_ID, help="hub id, local folder or builtin:smollm2-135m-phi3")
    parser.add_argument("--quantization", default="none", choices=["none", "nf4", "fp4", "int8"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="adapter registry folder")


def _settings(args: argparse.Namespace) -> ModelSettings:
    return ModelSettings(name_or_path=args.model, quantization=args.quantization, precision=args.precision)


def cmd_ask(args: argparse.Namespace) -> None:
    settings = _settings(args)
    started = time.perf_counter()
    print(f"loading {settings.name_or_path} ...", file=sys.stderr, flush=True)
    tokenizer = load_tokenizer(settings)
    host = AdapterHost(load_base_model(settings), AdapterRegistry(args.registry))
    loaded = time.perf_counter()
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.question}
    ]
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    with host.using(args.adapter) as model:
        (answer,) = generate_chat(model, tokenizer, [messages], params)
    done = time.perf_counter()
    print(f"Q: {args.question}")
    print(f"A: {answer.text}")
    print(
        f"[model {settings.name_or_path}, adapter {args.adapter or '(none)'}, load {loaded - started:.1f}s, "
        f"{answer.completion_tokens} tokens in {done - loaded:.1f}s, finish={answer.finish_reason}]",
        file=sys.stderr,
    )


def cmd_build_default(_: argparse.Namespace) -> None:
    print(ensure_builtin_model())


def cmd_adapters(args: argparse.Namespace) -> None:
    registry = AdapterRegistry(args.registry)
    names = registry.names()
    if not names:
        print(f"no adapters in {registry.root}")
    for name in names:
        meta = registry.metadata(name)
        print(f"{name}\t{meta.get('base_model', '?')}\t{meta.get('method', '?')}")


def cmd_merge(args: argparse.Namespace) -> None:
    out = merge_and_export(_settings(args), AdapterRegistry(args.registry), args.adapter, args.out)
    print(json.dumps({"exported": str(out)}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer one question with the base model or an adapter")
    ask.add_argument("question")
    _model_args(ask)
    ask.add_argument("--adapter", default=None, help="registry name of a LoRA adapter")
    ask.add_argument("--system", default=None, help="optional system message")
    ask.add_argument("--max-new-tokens", type=int, default=96)
    ask.add_argument("--temperature", type=float, default=0.0)
    ask.add_argument("--seed", type=int, default=None)
    ask.set_defaults(func=cmd_ask)

    build = sub.add_parser("build-default", help=f"build {BUILTIN_MODEL_ID} into the cache and print its folder")
    build.set_defaults(func=cmd_build_default)

    adapters = sub.add_parser("adapters", help="list the adapters in a registry")
    adapters.add_argument("--registry", default=DEFAULT_REGISTRY)
    adapters.set_defaults(func=cmd_adapters)

    merge = sub.add_parser("merge", help="merge an adapter into its base model and export the result")
    _model_args(merge)
    merge.add_argument("--adapter", required=True)
    merge.add_argument("--out", required=True, help="output folder (safetensors + tokenizer)")
    merge.set_defaults(func=cmd_merge)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ModelLayerError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
