"""One trial: the parameters Optuna suggests from ``tune.space``, the trial's config (the base
config with them, the per-trial budget and the trial's own model_dir) and its training run, which
reports every validation to Optuna so that the pruner can stop it."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import optuna

from transduce.config import Config, load_config
from transduce.search_space import Distribution
from transduce.training.trainer import HIGHER_IS_BETTER, Trainer


@dataclass
class Plan:
    """What each worker needs to run trials of the study; plain data, so that it travels to
    worker processes."""

    config: dict  # the base config, without its tune section
    space: dict[str, dict]  # tune.space as plain data
    study_dir: str
    storage: str  # an Optuna storage URL
    name: str  # the study's name (the config's name)
    trials: int  # finished trials wanted in all
    metric: str
    pruner: str
    trial_steps: int | None
    trial_minutes: float | None
    jobs: int
    threads: int | None  # training.threads of each trial (None: the config's)
    deadline: float | None  # time.time() after which no trial starts

    @property
    def direction(self) -> str:
        return "maximize" if HIGHER_IS_BETTER[self.metric] else "minimize"

    def pruner_for(self) -> optuna.pruners.BasePruner:
        """The pruner: it may stop a trial from its first validation on when the metric is the
        loss (a diverging run shows at once), from the second for BLEU/chrF (near zero early in
        every run)."""
        if self.pruner == "none":
            return optuna.pruners.NopPruner()
        every = self.config["training"]["validate_every"]
        warmup = 0 if self.metric in ("loss", "ppl") else 2 * every
        if self.pruner == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(every, warmup))
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)


def suggest(trial: optuna.Trial, plan: Plan) -> dict[str, Any]:
    """The trial's values of the tune.space keys."""
    params = {}
    for key, raw in plan.space.items():
        d = Distribution(**raw)
        if d.choice is not None:
            params[key] = trial.suggest_categorical(key, d.choice)
        elif d.int is not None:
            params[key] = trial.suggest_int(key, *d.int, step=d.step or 1)
        else:
            params[key] = trial.suggest_float(key, *(d.log_uniform or d.uniform),
                                              log=d.log_uniform is not None)
    return params


def trial_config(plan: Plan, params: dict[str, Any], model_dir: str) -> Config:
    """The base config with the trial's parameters, budget, threads and model_dir; best/ is
    chosen by the study's metric."""
    budget = {"training.max_steps": plan.trial_steps, "training.max_minutes": plan.trial_minutes,
              "training.threads": plan.threads}
    overrides = {k: v for k, v in budget.items() if v is not None}
    overrides.update({"training.early_stopping_metric": plan.metric, **params,
                      "model_dir": model_dir})
    return load_config(copy.deepcopy(plan.config), overrides)


def run(trial: optuna.Trial, plan: Plan, params: dict[str, Any]) -> float:
    """Train the trial (resuming its model_dir's last/ if it has one); returns its best value of
    the metric. Raises :class:`optuna.TrialPruned` when the pruner stops it at a validation."""
    trainer = Trainer(trial_config(plan, params, trial.user_attrs["model_dir"]))

    def report(step: int, scores: dict[str, float]) -> None:
        trial.report(scores[plan.metric], step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")

    trainer.on_validation = report
    trainer.train()
    best = trainer.state.best_score
    return float("nan") if best is None else best
