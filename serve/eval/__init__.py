"""Route evaluation: base vs RAG vs fine-tuned vs hybrid on the user's own questions.

``python -m serve.eval --qa qa.jsonl --endpoint URL --finetuned-adapter A --hybrid-adapter B``
asks a running Serve app each question on each route, scores the answers, and writes
``report.md``, ``routes.png``, ``metrics.json`` and ``answers.jsonl`` with a recommendation.
"""

from serve.eval.client import ROUTES, EvalError
from serve.eval.evaluate import evaluate
from serve.eval.recommend import Recommendation, recommend
from serve.eval.report import write_report
from serve.eval.runner import EvalResult, EvalSettings, run_eval

__all__ = [
    "ROUTES", "EvalError", "EvalResult", "EvalSettings", "Recommendation", "evaluate", "recommend", "run_eval",
    "write_report",
]
