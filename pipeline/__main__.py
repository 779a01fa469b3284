"""``python -m pipeline``: documents -> Milvus -> RAFT data -> LoRA adapters -> Serve -> evaluation."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split(": ", 1)[1])
    parser.add_argument("--config", default=None, help="pipeline YAML (default: pipeline/configs/quillfen.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config knob, e.g. --set eval.limit=10 (value parsed as YAML)")
    parser.add_argument("--retrain", action="store_true", help="train the adapters even if up-to-date ones exist")
    parser.add_argument("--reevaluate", action="store_true",
                        help="ask the evaluation questions again even if nothing that decides the answers changed")
    parser.add_argument("--keep-serving", action="store_true", help="leave the Serve app up until Ctrl-C")
    parser.add_argument("--port", type=int, default=None, help="HTTP port of the app (default 8000; 0 = any free)")
    args = parser.parse_args(argv)

    from pipeline.app import PortInUseError
    from pipeline.settings import DEFAULT_CONFIG, PipelineConfigError, load_settings
    from train.errors import TrainError

    overrides = list(args.set) + ([f"port={args.port}"] if args.port is not None else [])
    try:
        settings = load_settings(args.config or DEFAULT_CONFIG, overrides)
    except (PipelineConfigError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from pipeline.run import run_pipeline

    try:
        result = run_pipeline(settings, retrain=args.retrain, keep_serving=args.keep_serving, reevaluate=args.reevaluate)
    except (PortInUseError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\ntotal {result.timings.get('total', 0):.0f}s: " +
          ", ".join(f"{k.split(' ')[0]} {v:.0f}s" for k, v in result.timings.items() if k != "total"), flush=True)
    if args.keep_serving:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
