"""The Serve application graph: Gateway -> (Retriever, Generator).

``serve run serve/config.yaml`` and ``serve deploy serve/config.yaml`` import
``serve.app:build_app`` and call it with the config's ``args`` (Ray's application-builder
contract: exactly one parameter, the args dict); Ray then applies the config's
``deployments`` section to the bound deployments by name. ``python -m serve`` and
:func:`serve.local.run_local` call :func:`bind_app` with that same section themselves.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from ray.serve import Application

from serve.gateway import Gateway
from serve.generator import Generator
from serve.retriever import Retriever
from serve.settings import AppSettings


class ServeConfigError(ValueError):
    """The ``args`` of the Serve config do not validate."""


def validate_args(args: dict[str, Any] | None) -> AppSettings:
    try:
        return AppSettings.model_validate(args or {})
    except ValidationError as exc:
        raise ServeConfigError(f"invalid application args in the Serve config:\n{exc}") from exc


def bind_app(args: dict[str, Any] | None = None, deployment_options: dict[str, dict] | None = None) -> Application:
    """Bind the graph; ``deployment_options`` (name -> Serve options) mirrors the config's ``deployments``."""
    opts = deployment_options or {}
    plain = validate_args(args).model_dump(mode="json")
    retriever = Retriever.options(**opts.get("Retriever", {})).bind(plain["retriever"])
    generator = Generator.options(**opts.get("Generator", {})).bind(plain["generator"])
    return Gateway.options(**opts.get("Gateway", {})).bind(retriever, generator, plain)


def build_app(args: dict[str, Any]) -> Application:
    """The application builder named by ``import_path: serve.app:build_app`` in serve/config.yaml."""
    return bind_app(args)
