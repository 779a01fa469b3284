"""Run the Serve app of a given checkout on a private local Ray until SIGINT/SIGTERM.

The serving benchmark uses it to serve an earlier commit of this project beside the current
one in the same run (``git worktree`` of that commit, imported first through ``sys.path``),
so "before" and "after" are measured side by side on the same machine state.

    python benchmarks/serve/serve_app.py --checkout DIR --port 8300 --registry R --uri U --collection C
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, required=True, help="the project folder whose code serves")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--temp-dir", required=True, help="Ray's temp folder")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    sys.path.insert(0, str(checkout))

    import ray
    from ray import serve

    from serve.local import run_local

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ray.init(address="local", include_dashboard=False, _temp_dir=args.temp_dir, log_to_driver=False)
    try:
        run_local(
            checkout / "serve" / "config.yaml", host="127.0.0.1", port=args.port,
            overrides={"generator.adapter_registry": args.registry, "retriever.uri": args.uri,
                       "retriever.collection": args.collection},
        )
        print("ready", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
