"""``python -m serve``: run the RAG / fine-tuned / hybrid endpoints locally on port 8000.

It starts a private local Ray (never attaches to a running cluster: use ``serve deploy
serve/config.yaml`` for that) and deploys the same graph and config ``serve run`` would.
Ray's temp files go under the project's cache folder (``EXPERT_CACHE_DIR``, ``.cache/`` with ``make``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__)
    parser.add_argument("--config", default=None, help="Serve config (default: serve/config.yaml)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs the local Ray may use (default: all)")
    parser.add_argument("--num-gpus", type=int, default=None, help="GPUs the local Ray may use (default: all)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override an app arg, e.g. --set generator.model.quantization=nf4 (value parsed as YAML)",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)

    import ray
    from ray import serve

    from cluster.private_ray import start_private_ray
    from serve.app import ServeConfigError, validate_args
    from serve.local import DEFAULT_CONFIG, load_app_config, run_local

    config = args.config or DEFAULT_CONFIG
    try:  # a bad config fails here, in a second, before Ray starts
        validate_args(load_app_config(config, overrides)["args"])
    except ServeConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start_private_ray(num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    try:
        run_local(config, host=args.host, port=args.port, overrides=overrides)
    except Exception as exc:  # e.g. a replica failed to start: its error is in the log above
        print(f"error: {exc}", file=sys.stderr)
        serve.shutdown()
        ray.shutdown()
        return 2 if isinstance(exc, ServeConfigError) else 1
    print(f"serving on http://{args.host}:{args.port}  (OpenAI API at /v1, docs at /docs); Ctrl-C stops", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background (SIGINT ignored there)
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    finally:
        print("shutting down Serve and Ray", flush=True)
        serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
