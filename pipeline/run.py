"""The five stages in order; each prints its progress and reuses what an earlier run built."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.progress import say, stage
from pipeline.settings import AdapterPlan, PipelineSettings

if TYPE_CHECKING:  # imported lazily at run time, so `python -m pipeline --help` answers at once
    from pipeline.datasets import TrainingFiles


@dataclass
class PipelineResult:
    url: str | None = None
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    adapters: dict[str, bool] = field(default_factory=dict)  # name -> reused
    ingest_counts: dict[str, int] = field(default_factory=dict)
    recommendation: str | None = None


def run_pipeline(
    settings: PipelineSettings, *, retrain: bool = False, keep_serving: bool = False, reevaluate: bool = False
) -> PipelineResult:
    """Ingest, build data, train (or reuse) both adapters, serve, demo, evaluate.

    The Serve app and Ray are shut down at the end unless ``keep_serving``; then the caller
    owns them (``python -m pipeline --keep-serving`` waits for Ctrl-C).
    """
    # Imported here so `python -m pipeline --help` answers at once.
    import ray
    from ray import serve

    from pipeline.adapters import train_or_reuse
    from pipeline.app import show_answers, start_app, start_ray
    from pipeline.datasets import build_training_files
    from pipeline.evaluate import evaluate_routes
    from pipeline.knowledge import ingest_documents
    from qa import load_qa

    result = PipelineResult()
    started = time.perf_counter()
    try:
        with stage(1, f"ingest {settings.company_dir} into Milvus ({settings.uri}, collection {settings.collection})",
                   result.timings):
            result.ingest_counts = ingest_documents(settings).counts
        with stage(2, "build training data and train the LoRA adapters with Ray Train", result.timings):
            files = build_training_files(settings)
            start_ray()
            for plan, data in adapters_to_train(settings, files):
                outcome = train_or_reuse(settings, plan, data, retrain=retrain)
                result.adapters[outcome.name] = outcome.reused
        with stage(3, "start the Ray Serve app and ask through every route", result.timings):
            result.url = start_app(settings)
            demo = load_qa(settings.company_path(settings.qa_test))[: settings.demo_questions]
            show_answers(result.url, settings, demo)
        with stage(4, f"evaluate {', '.join(settings.eval.routes)} on the held-out questions", result.timings):
            evaluation, paths = evaluate_routes(result.url, settings, reevaluate=reevaluate)
            result.report, result.recommendation = paths["report"], evaluation.recommendation.route
        result.timings["total"] = round(time.perf_counter() - started, 1)
        (settings.work / "last-run.json").write_text(json.dumps(
            {"timings": result.timings, "adapters": result.adapters, "ingest": result.ingest_counts,
             "recommendation": result.recommendation, "report": str(result.report)}, indent=2))
        print("\n[5/5] next steps", flush=True)
        say(next_steps(settings, result, keep_serving))
    finally:
        if not keep_serving and ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
    return result


def adapters_to_train(settings: PipelineSettings, files: TrainingFiles) -> list[tuple[AdapterPlan, Path]]:
    """(plan, data file) of each adapter a route being evaluated serves: evaluating only
    ``[rag, hybrid]`` (e.g. to measure a RAFT recipe) does not spend CPU time on the fine-tuned one."""
    routes = settings.eval.routes
    return [(plan, data) for route, plan, data in (("finetuned", settings.finetuned, files.instruct),
                                                   ("hybrid", settings.hybrid, files.raft)) if route in routes]


def next_steps(settings: PipelineSettings, result: PipelineResult, keep_serving: bool) -> str:
    url = result.url or f"http://{settings.host}:{settings.port}"
    serving = (f"The app is up at {url} until you press Ctrl-C." if keep_serving
               else "The app was stopped; `make demo ARGS=--keep-serving` keeps it up afterwards.")
    return f"""{serving}
Endpoints: POST {url}/rag  /finetuned  /hybrid  /search   (JSON: {{"question": "...", "adapter": "{settings.hybrid.name}"}})
           POST {url}/v1/chat/completions  GET {url}/v1/models  (OpenAI API; model "{settings.hybrid.name}+rag" = hybrid)
Report:    {result.report}
Your own data: copy {settings.company_dir}/ (docs/, structured/, qa/train.jsonl, qa/test.jsonl in the same format),
           then `.venv/bin/python -m pipeline --set company_dir=PATH --set name=acme --set collection=acme \\
           --set work_dir=data/pipeline/acme --set finetuned.name=acme-ft --set hybrid.name=acme-raft`
On a GPU cluster (see the README's cluster guide): `ray up cluster/aws-gpu.yaml`, then
           `ray job submit --working-dir . -- python -m retrieval ingest ... --uri http://milvus:19530`,
           `ray job submit --working-dir . -- python -m train --config train/recipes/phi3-mini-qlora-1gpu.yaml`,
           `serve deploy serve/config.yaml` (Phi-3 model, num_gpus: 1)."""
