"""Read a recipe YAML, apply ``--set key=value`` overrides, and explain validation errors.

Errors name the dotted key (``lora.rr``), say what is wrong, and for unknown keys list the
keys that section does accept, so a typo is fixed without opening the source.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from train.errors import RecipeError
from train.recipe import Recipe

RECIPES_DIR = Path(__file__).parent / "recipes"


def shipped_recipes() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*.yaml"))


def _section_model(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model that the section at ``loc`` is validated by (None if not a section)."""
    model: type[BaseModel] = Recipe
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def explain(exc: ValidationError, source: str) -> RecipeError:
    """Turn pydantic's errors into one message that names each bad key and the fix."""
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        key = ".".join(loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            section = _section_model(loc[:-1])
            allowed = ", ".join(section.model_fields) if section else "?"
            lines.append(f"  {key}: unknown key; allowed keys here: {allowed}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {message} (got {error.get('input')!r})" if loc else f"  {message}")
    return RecipeError(f"invalid recipe {source}:\n" + "\n".join(lines))


def apply_override(tree: dict, assignment: str) -> None:
    """Set ``a.b.c=value`` in ``tree``; the value is parsed as YAML (numbers, booleans, lists)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {assignment!r}: expected key=value, e.g. --set training.max_steps=10")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"--set {assignment!r}: value is not valid YAML ({exc})") from None
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"--set {assignment!r}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def recipe_from_dict(tree: dict, source: str = "(dict)") -> Recipe:
    try:
        return Recipe.model_validate(tree)
    except ValidationError as exc:
        raise explain(exc, source) from None


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Load and validate a recipe file; ``overrides`` are ``key=value`` strings applied on top."""
    path = Path(path)
    if not path.is_file():
        known = ", ".join(str(p.relative_to(RECIPES_DIR.parent.parent)) for p in shipped_recipes())
        raise RecipeError(f"recipe {path} not found; shipped recipes: {known}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise RecipeError(f"recipe {path} must be a mapping of sections (model:, lora:, data:, ...), got {type(tree).__name__}")
    for assignment in overrides:
        apply_override(tree, assignment)
    source = f"{path}" + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return recipe_from_dict(tree, source)
