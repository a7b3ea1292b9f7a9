"""Optimizers (adam, adamw, sgd) and learning-rate schedules.

Schedules: ``constant``; ``plateau`` (multiply by ``plateau_factor`` when the dev metric has not
improved for ``plateau_patience`` validations); ``warmup_inverse_sqrt`` (linear warmup, then
lr * sqrt(warmup / step)); ``cosine`` (linear warmup, then cosine decay to ``min_lr`` at the last
step). Every schedule steps once per update, and ``plateau`` also once per validation.
"""
from __future__ import annotations

import math

import torch

from transduce.config import TrainingConfig


def build_optimizer(cfg: TrainingConfig, params) -> torch.optim.Optimizer:
    """The configured optimizer, in torch's fused form (one kernel over all parameters instead
    of a Python loop of small ops per parameter: Adam's step is 4x faster on CPU)."""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                                fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas,
                                 weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, fused=fused)


class Schedule:
    """Sets the learning rate from the update count (and, for plateau, the dev metric)."""

    def __init__(self, cfg: TrainingConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                 higher_is_better: bool):
        self.cfg, self.optimizer = cfg, optimizer
        self.total_steps = max(1, total_steps)
        self.sign = 1.0 if higher_is_better else -1.0
        self.scale = 1.0  # plateau multiplier
        self.best: float | None = None
        self.bad = 0  # validations without improvement
        self.step_count = 0
        self._apply()

    def lr(self) -> float:
        cfg, s = self.cfg, self.step_count
        warm = cfg.warmup_steps
        if cfg.schedule == "warmup_inverse_sqrt":
            if warm == 0:
                return cfg.lr
            return cfg.lr * min((s + 1) / warm, math.sqrt(warm / max(s, 1)))
        if warm and s < warm:
            return cfg.lr * (s + 1) / warm
        if cfg.schedule == "cosine":
            progress = min(1.0, (s - warm) / max(1, self.total_steps - warm))
            return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))
        if cfg.schedule == "plateau":
            return max(cfg.min_lr, cfg.lr * self.scale)
        return cfg.lr

    def _apply(self) -> None:
        lr = self.lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """After each update."""
        self.step_count += 1
        self._apply()

    def validated(self, metric: float) -> None:
        """After each validation: plateau lowers the rate when the metric stops improving."""
        if self.cfg.schedule != "plateau":
            return
        if self.best is None or self.sign * metric > self.sign * self.best:
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
            if self.bad > self.cfg.plateau_patience:
                self.scale *= self.cfg.plateau_factor
                self.bad = 0
        self._apply()

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad,
                "step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best = state["scale"], state["best"]
        self.bad, self.step_count = state["bad"], state["step_count"]
        self._apply()
