"""Typed errors of the fine-tuning route.

Each one says what is wrong and how to fix it, and survives pickling, because the data
checks run on the driver but the same errors can surface from Ray Train workers.
"""

from __future__ import annotations


class TrainError(Exception):
    """Base class for every error the training package raises on purpose."""

    def __reduce__(self):  # one-string errors cross Ray process boundaries intact
        return (type(self), self.args)


class RecipeError(TrainError):
    """A recipe YAML (or a ``--set`` override) is invalid; the message names the bad key."""


class DataFormatError(TrainError):
    """A training data file is missing or a line is malformed; the message names file and line."""


class ResumeError(TrainError):
    """``--resume`` cannot continue: no earlier run, or the recipe changed since it started."""
