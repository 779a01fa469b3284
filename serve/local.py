"""Run the Serve config on a local Ray (``python -m serve``), the same graph ``serve run`` builds.

The config file stays the single source: its ``args`` go to :func:`serve.app.build_app` and
its ``deployments`` become each deployment's Serve options, so what runs locally is what
``serve deploy serve/config.yaml`` would run on a cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from ray import serve
from ray.serve.handle import DeploymentHandle

from serve.app import ServeConfigError, bind_app

DEFAULT_CONFIG = Path(__file__).with_name("config.yaml")


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """``generator.model.quantization=nf4`` -> tree["generator"]["model"]["quantization"] = "nf4"."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ServeConfigError(f"cannot set {dotted!r}: {key!r} is not a section")
    node[leaf] = value


def merged(base: dict, extra: dict) -> dict:
    """``extra`` laid over ``base``; nested dicts merge (``ray_actor_options: {num_gpus: 1}`` keeps num_cpus)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_config(path: str | Path = DEFAULT_CONFIG) -> dict:
    """The whole Serve config file as a dict (a clear error for a missing or non-YAML file)."""
    file = Path(path)
    if not file.is_file():
        raise ServeConfigError(f"Serve config {file} not found; pass an existing YAML file (default: {DEFAULT_CONFIG})")
    try:
        config = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ServeConfigError(f"Serve config {file} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ServeConfigError(f"Serve config {file} must be a mapping with an 'applications' list")
    return config


def load_app_config(path: str | Path = DEFAULT_CONFIG, overrides: dict[str, Any] | None = None) -> dict:
    """The first application of a Serve config file, with ``args`` overrides applied."""
    config = read_config(path)
    try:
        app = copy.deepcopy(config["applications"][0])
    except (KeyError, IndexError, TypeError) as exc:
        raise ServeConfigError(f"{path} has no 'applications' list") from exc
    app.setdefault("args", {})
    for dotted, value in (overrides or {}).items():
        set_dotted(app["args"], dotted, value)
    return app


def run_local(
    config_path: str | Path = DEFAULT_CONFIG,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    overrides: dict[str, Any] | None = None,
    deployment_overrides: dict[str, dict] | None = None,
    logging_config: dict[str, Any] | None = None,
) -> DeploymentHandle:
    """Start Serve's HTTP proxy on ``host:port`` and deploy the config's application.

    Needs a connected Ray (``ray.init(address="local")`` for a private one). The config's
    ``http_options`` (e.g. ``request_timeout_s``) apply, with ``host``/``port`` from the
    arguments; ``deployment_overrides`` (name -> Serve options) are merged over the config's
    ``deployments``, e.g. ``{"Generator": {"ray_actor_options": {"num_gpus": 1}}}``;
    ``logging_config`` is Serve's own (controller and proxy), e.g. ``{"log_level": "WARNING"}``.
    """
    app = load_app_config(config_path, overrides)
    options = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app.get("deployments", [])}
    for name, extra in (deployment_overrides or {}).items():
        options[name] = merged(options.get(name, {}), extra)
    http_options = {**(read_config(config_path).get("http_options") or {}), "host": host, "port": port}
    serve.start(http_options=http_options, logging_config=logging_config)
    return serve.run(
        bind_app(app["args"], options), name=app.get("name", "expert"), route_prefix=app.get("route_prefix", "/")
    )
