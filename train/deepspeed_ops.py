"""Build DeepSpeed's CPU ops ahead of time, once per environment, instead of inside a run.

DeepSpeed JIT-compiles its native ops on first use and caches them in ``TORCH_EXTENSIONS_DIR``
(the Makefile points it at ``.cache/torch_extensions``). On this project's CPU recipes two are
used: the shared-memory collectives (``deepspeed_shm_comm``, loaded by every DeepSpeed run on
CPU) and ``cpu_adam`` (DeepSpeedCPUAdam, for ``deepspeed.offload_optimizer``). Compiling them
takes ~35 s and ~65 s on 2 cores; left to the first run, that time lands inside a training job
(or a test) and, on a cluster, in every node's first worker at once. ``make venv`` runs this
(``python -m train.deepspeed_ops``) as DeepSpeed's docs advise pre-building ops for images;
a later JIT load finds the cached build (0-3 s). GPU images build their CUDA ops
with ``DS_BUILD_OPS=1 pip install deepspeed`` instead; this module only builds what the
current accelerator's builders report as compatible.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# DeepSpeed's builder names on its CPU accelerator, in the order a CPU run needs them.
CPU_OPS = ("ShareMemCommBuilder", "CPUAdamBuilder")


def build_ops(names: tuple[str, ...] = CPU_OPS) -> dict[str, float]:
    """Load (building when not cached) each op; seconds per op."""
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    seconds = {}
    for name in names:
        builder = accelerator.create_op_builder(name)
        if builder is None or not builder.is_compatible(verbose=False):
            print(f"skip {name}: not available on the {accelerator.device_name()} accelerator")
            continue
        started = time.monotonic()
        builder.load(verbose=False)
        seconds[name] = round(time.monotonic() - started, 1)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.deepspeed_ops", description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    folder = os.environ.get("TORCH_EXTENSIONS_DIR", "~/.cache/torch_extensions (torch's default)")
    for name, seconds in build_ops().items():
        print(f"{name}: ready in {folder} ({seconds}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
