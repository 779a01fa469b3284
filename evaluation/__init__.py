"""Route evaluation: base vs RAG vs fine-tuned vs hybrid on the user's own questions.

``python -m evaluation --qa qa.jsonl --endpoint URL --finetuned-adapter A --hybrid-adapter B``
asks a running Serve app each question on each route, scores the answers, and writes
``report.md``, ``routes.png``, ``metrics.json`` and ``answers.jsonl`` with a recommendation.
"""

from evaluation.client import ROUTES, EvalError
from evaluation.evaluate import evaluate
from evaluation.recommend import Recommendation, recommend
from evaluation.report import write_report
from evaluation.runner import EvalResult, EvalSettings, run_eval

__all__ = [
    "ROUTES", "EvalError", "EvalResult", "EvalSettings", "Recommendation", "evaluate", "recommend", "run_eval",
    "write_report",
]
