"""``python -m train --config train/recipes/NAME.yaml [--set key=value ...] [--resume | --plan]``.

The same command runs on a cluster: ``ray job submit --working-dir . -- python -m train --config ...``.
Exit codes: 0 trained and published, 2 bad recipe/data/arguments (nothing trained),
1 training failed (continue it with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys

from modeling.errors import ModelLayerError
from train.errors import TrainError
from train.recipe_loading import load_recipe, shipped_recipes


def build_parser() -> argparse.ArgumentParser:
    recipes = ", ".join(p.name for p in shipped_recipes())
    parser = argparse.ArgumentParser(prog="python -m train", description="Fine-tune a LoRA/QLoRA adapter from a YAML recipe.")
    parser.add_argument("--config", required=True, help=f"recipe YAML (shipped in train/recipes: {recipes})")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set training.max_steps=10 --set output.adapter_name=v2 (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the newest stopped run of this recipe's adapter")
    parser.add_argument("--print-recipe", action="store_true", help="print the validated recipe with all defaults and exit")
    parser.add_argument(
        "--plan", action="store_true",
        help="print the estimated memory per worker and whether it fits, then exit (2 if it does not fit)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        recipe = load_recipe(args.config, args.overrides)
        if args.print_recipe:
            print(json.dumps(recipe.model_dump(mode="json"), indent=2))
            return 0
        if args.plan:
            from train.memory_plan import check_fits, plan_memory

            plan = plan_memory(recipe)
            print(plan.render())
            check_fits(plan)
            return 0
        from train.launcher import run

        run(recipe, resume=args.resume)
    except (TrainError, ModelLayerError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a failed Ray Train run: workers' errors are in the log above
        if type(exc).__name__ not in {"TrainingFailedError", "WorkerGroupError", "ControllerError"}:
            raise
        print(f"error: training failed ({exc}); fix the cause and continue with --resume", file=sys.stderr)
        return 1
    return 0
