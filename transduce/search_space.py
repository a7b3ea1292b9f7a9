"""The ``tune`` section of the config: the search space of ``transduce tune`` (config key ->
distribution) and the study's budgets. ``config.Config`` checks each space key against itself.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, model_validator

from transduce.section import Bool, Int, Section


class Distribution(Section):
    """One ``tune.space`` entry: log_uniform, uniform, int (with an optional step) or choice."""

    log_uniform: Optional[tuple[float, float]] = None
    uniform: Optional[tuple[float, float]] = None
    int: Optional[tuple[Int, Int]] = None
    step: Optional[Int] = Field(None, ge=1)  # with int
    choice: Optional[list[Union[Bool, Int, float, str, None]]] = Field(None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "Distribution":
        kinds = [k for k in ("log_uniform", "uniform", "int", "choice") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(f"give one of log_uniform, uniform, int, choice (got {kinds})")
        if self.step is not None and kinds != ["int"]:
            raise ValueError(f"step goes with int, not {kinds[0]}")
        low, high = self.log_uniform or self.uniform or self.int or (0, 1)  # (choice: no range)
        if not low < high:
            raise ValueError(f"{kinds[0]}: [{low}, {high}] needs the low end below the high end")
        if self.log_uniform and low <= 0:
            raise ValueError(f"log_uniform needs a low end above 0 (got {low}); use uniform")
        return self

    def values(self) -> list:
        """Every choice, or the two ends of the range (int with a step: the last one reached)."""
        if self.choice:
            return list(self.choice)
        low, high = self.log_uniform or self.uniform or self.int
        return [low, high - (high - low) % self.step if self.step else high]


class TuneConfig(Section):
    """``transduce tune``: the search space (config key -> distribution) and the budgets."""

    space: dict[str, Distribution] = Field(default_factory=dict)
    trials: Int = Field(20, ge=1, le=100_000)
    trial_minutes: Optional[float] = Field(None, gt=0)  # per trial (its training.max_minutes)
    trial_steps: Optional[Int] = Field(None, ge=1)  # per trial (its training.max_steps)
    minutes: Optional[float] = Field(None, gt=0)  # the study: no trial starts after this
    metric: Optional[Literal["bleu", "chrf", "loss", "ppl"]] = None  # default: early stopping's
    pruner: Literal["median", "halving", "none"] = "median"
    storage: Optional[str] = None  # an Optuna storage URL; default: sqlite study.db
