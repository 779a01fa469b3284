"""The one way this project starts a private local Ray (training, serving and the pipeline all use it).

Private: ``address="local"`` always starts a new Ray, never attaching to a cluster someone else
runs on the same machine; its temp files (sockets, logs, spilled objects) go under the
project's cache folder, not ``/tmp/ray``; no dashboard (fewer processes on a small machine).
Code that should use a real cluster checks ``RAY_ADDRESS`` first (``ray job submit`` sets it).

Also home of the filters on what the driver prints from workers (Ray's
``RAY_DEDUP_LOGS_{ALLOW,SKIP}_REGEX``): lines a private Ray would print uselessly are dropped.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from modeling.paths import cache_dir

# Ray Train's placement-group cleaner polls the state API, which the dashboard serves; without
# the dashboard it would log this every second of a run. Its job (removing the placement group
# of a controller that crashed) does not arise on a private Ray that is shut down at the end.
STATE_API_WARNING = r"Failed to query Ray Train Controller actor state"


def start_private_ray(
    *, num_cpus: int | None = None, num_gpus: int | None = None, logging_level: int = logging.INFO,
    log_to_driver: bool = True,
) -> bool:
    """Start a private local Ray; False (and nothing done) if this process already has a Ray."""
    import ray

    if ray.is_initialized():
        return False
    extend_driver_log_filter("skip", STATE_API_WARNING)
    ray.init(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        _temp_dir=str(cache_dir() / "ray"),
        logging_level=logging_level,
        log_to_driver=log_to_driver,
    )
    return True


def extend_driver_log_filter(kind: str, pattern: str) -> None:
    """Add ``pattern`` to Ray's ``RAY_DEDUP_LOGS_{ALLOW,SKIP}_REGEX`` (lines kept whole / dropped).

    The variables are read when Ray is first imported; when it already is, the driver's
    deduplicators are extended the same way.
    """
    variable = f"RAY_DEDUP_LOGS_{kind.upper()}_REGEX"
    current = os.environ.get(variable)
    if not current or pattern not in current:
        os.environ[variable] = f"(?:{current})|(?:{pattern})" if current else pattern
    ray_logging = sys.modules.get("ray._private.ray_logging")
    attribute = f"{kind}_re"
    for name in ("stdout_deduplicator", "stderr_deduplicator"):
        deduplicator = getattr(ray_logging, name, None)
        if deduplicator is None or not hasattr(deduplicator, attribute):
            continue  # Ray not imported yet (the variable above applies), or its internals moved
        compiled = getattr(deduplicator, attribute)
        if compiled is None or pattern not in compiled.pattern:
            combined = pattern if compiled is None else f"(?:{compiled.pattern})|(?:{pattern})"
            setattr(deduplicator, attribute, re.compile(combined))
