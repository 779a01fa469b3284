"""Step 3: the Serve application on the local Ray, and a few questions through every route."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from evaluation.client import EndpointClient, route_specs
from serve.local import run_local
from cluster.private_ray import start_private_ray
from qa import QAItem

from pipeline.knowledge import write_retrieval_yaml
from pipeline.progress import say
from pipeline.settings import PipelineSettings


QUIET_LOGS = {"enable_access_log": False, "log_level": "WARNING"}


class PortInUseError(RuntimeError):
    """The configured HTTP port is taken."""


def pick_port(host: str, port: int) -> int:
    """``port``, checked to be free (0 = any free port), so Serve never half-starts on a taken one."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"port {port} on {host} is in use ({exc.strerror}); stop what uses it or pass --port N (0 = any free port)"
            ) from None
        return sock.getsockname()[1]


def start_ray() -> None:
    start_private_ray(num_cpus=max(os.cpu_count() or 1, 4))  # logical slots: training then serving share the cores


def start_app(settings: PipelineSettings) -> str:
    """Deploy serve/config.yaml's app pointed at this pipeline's collection and registry; return its URL."""
    port = pick_port(settings.host, settings.port)
    start_ray()
    run_local(
        host=settings.host,
        port=port,
        overrides={
            **settings.serve_overrides,
            "generator.adapter_registry": str(Path(settings.registry).resolve()),
            "retriever.uri": str(Path(settings.uri).resolve()) if "://" not in settings.uri else settings.uri,
            "retriever.collection": settings.collection,
            "retriever.config": str(write_retrieval_yaml(settings)),
        },
        # Training progress comes back through Ray's worker logs; per-request access logs would drown it.
        deployment_overrides={
            **{name: {"logging_config": QUIET_LOGS} for name in ("Gateway", "Retriever")},
            "Generator": {"logging_config": QUIET_LOGS,
                          "ray_actor_options": {"num_cpus": settings.generator_cpus or os.cpu_count() or 1}},
        },
        logging_config=QUIET_LOGS,  # the controller's and proxy's INFO lines too
    )
    url = f"http://{settings.host}:{port}"
    say(f"serving at {url}  (OpenAI API at {url}/v1, docs at {url}/docs)")
    return url


def show_answers(url: str, settings: PipelineSettings, questions: list[QAItem]) -> None:
    """Ask each question through every route being evaluated (all four by default); print answers and sources."""
    specs = route_specs(settings.eval.routes, settings.finetuned.name, settings.hybrid.name)
    with EndpointClient(url) as client:
        client.check(specs)
        for item in questions:
            say(f"\nQ: {item.question}\n   expected: {item.answer}")
            for spec in specs:
                answer = client.ask(spec, item.question, max_tokens=settings.demo_max_tokens)
                text = " ".join((answer.error or answer.text).split())
                say(f"   {spec.name:<10} {text}")
                for source in answer.sources[:3]:
                    say(f"   {'':<10}   [{source.ref}] {source.source}")
