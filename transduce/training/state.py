"""What a run must remember to continue exactly where it stopped, and when it may resume.

:class:`TrainerState` is the position of a run (step, epoch, batch, early stopping, time). It is
written to ``last/trainer_state.pt`` together with the optimizer, schedule, gradient-scaler and
RNG states (:meth:`TrainerState.to_file`), and read back and checked in one place
(:meth:`TrainerState.from_file`). The file holds only tensors and plain values, loaded with
``torch.load(weights_only=True)`` (``checkpoint.load_trainer_state``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transduce.config import TrainingConfig
from transduce.errors import TransduceError
from transduce.checkpoint import STATE, load_trainer_state, load_weights
from transduce.model_dir import CONFIG
from transduce.training.distributed import World
from transduce.yaml_io import load_yaml

log = logging.getLogger("transduce")
# Settings a resumed run must share with the run that wrote last/: they fix the network's shape,
# what its vocabulary means, and what the optimizer state is for; checked before anything else.
SAME_ON_RESUME = ("model", "data.tokenizer", "data.src_tokenizer", "data.tgt_tokenizer",
                  "data.lowercase", "data.vocab_size", "data.spm_model_type", "data.min_freq",
                  "data.max_vocab_size", "data.spm_max_sentences", "data.shared_vocab",
                  "training.optimizer")
# ... and the training pairs (which corpus, which lengths: translate truncates inputs by them),
# checked once the new corpus has been read and checked. The rest may change on resume.
DATA_ON_RESUME = ("data.train", "data.src_lang", "data.tgt_lang", "data.max_src_len",
                  "data.max_tgt_len")
# the parts of the state file beside the position: the state dicts of the trainer's optimizer,
# schedule and gradient scaler, and rank 0's RNG states
PARTS = ("optimizer", "schedule", "scaler", "rng")
# absent from files of older versions
OPTIONAL = {"nonfinite_run": 0, "validated_at": -1, "validate_every": None}


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float | None = None
    bad_validations: int = 0  # validations without improvement, in a row
    elapsed: float = 0.0  # training seconds so far, validation excluded
    nonfinite: int = 0  # updates skipped because the loss was NaN/inf
    nonfinite_run: int = 0  # ... of which in a row, up to now
    validated_at: int = field(default=-1, metadata={"min": -1})  # step of the last validation
    # updates between validations that training.validate_every: auto chose (None: not yet)
    validate_every: int | None = field(default=None, metadata={"min": 1})

    def validated(self, value: float, higher_is_better: bool) -> bool:
        """Count a validation scoring ``value``; True if it is the best so far."""
        better = math.isfinite(value) and (self.best_score is None or (
            value > self.best_score if higher_is_better else value < self.best_score))
        if better:
            self.best_score, self.bad_validations = value, 0
        else:
            self.bad_validations += 1
        return better

    def skip_nonfinite(self, loss: float, limit: int, model_dir: Path) -> None:
        """Count an update skipped for a NaN/inf loss; ``limit`` of them in a row stop training."""
        self.nonfinite += 1
        self.nonfinite_run += 1
        log.warning("step %d: loss is %s; update skipped (%d in a row, %d in all)",
                    self.step + 1, loss, self.nonfinite_run, self.nonfinite)
        if self.nonfinite_run >= limit:
            raise TransduceError(
                f"{self.nonfinite_run} updates in a row had a NaN/inf loss (step {self.step + 1}); "
                f"training stopped, the checkpoints in {model_dir} are intact. Lower "
                "training.lr, set training.clip_grad_norm or use training.precision: fp32, then "
                "run the same command to resume")

    def stop_reason(self, t: TrainingConfig, resumed: bool = False) -> str:
        """Why training stops here (max_steps, max_minutes; on resume also early stopping that
        has already struck), or ""."""
        if resumed and t.patience and self.bad_validations >= t.patience:
            return f"early stopping: no improvement in {t.patience} validations"
        if t.max_steps and self.step >= t.max_steps:
            return f"max_steps={t.max_steps} reached"
        if t.max_minutes and self.elapsed >= 60 * t.max_minutes:
            return f"max_minutes={t.max_minutes} reached"
        return ""

    def to_file(self, components: dict[str, Any], rngs: list[dict], world_size: int) -> dict:
        """The dict to write as ``trainer_state.pt``: the position, the state dicts of
        ``components`` (the objects of :data:`PARTS` with a ``state_dict``), the RNG states of
        ranks 0, 1, ... (``rngs``: rank 0's as ``rng``, the others' as ``rank_rng``), the world
        size."""
        return {**dataclasses.asdict(self), **{k: c.state_dict() for k, c in components.items()},
                "rng": rngs[0], "rank_rng": rngs[1:], "world_size": world_size}

    @classmethod
    def from_file(cls, state: dict, path: Path) -> tuple["TrainerState", dict]:
        """The position and the :data:`PARTS` of a loaded state file, checked as the config is:
        a missing key, or a value of the wrong type or out of range (a negative step), is a
        one-line error naming it, before anything is used or written."""
        fields = dataclasses.fields(cls)
        required = [f.name for f in fields if f.name not in OPTIONAL] + list(PARTS)
        missing = [k for k in required if k not in state]
        values = {f.name: state.get(f.name, OPTIONAL.get(f.name)) for f in fields}
        problems = [f"missing {', '.join(missing[:3])}"] if missing else []
        problems += [f"{f.name} is {reprlib.repr(values[f.name])}, not {want}"
                     for f in fields if (want := _wanted(f, values[f.name]))]
        problems += [f"{k} is not a dict" for k in PARTS if type(state.get(k, {})) is not dict]
        size = state.get("world_size", 1)
        if type(size) is not int or size < 1 or type(state.get("rank_rng", [])) is not list:
            problems.append(f"world_size {reprlib.repr(size)} or rank_rng of the wrong type")
        if problems:
            raise TransduceError(f"{path / STATE}: not a transduce trainer state ({problems[0]}); "
                                 f"remove {path}, or use --overwrite to start afresh")
        return cls(**values), {k: state[k] for k in PARTS}


def _wanted(f: dataclasses.Field, value: Any) -> str:
    """What ``value`` should be, if it is not of the field's type (``int``, ``int | None``,
    ``float``, ``float | None``; a bool is none of them) or below its ``min`` (0 unless the field
    says otherwise); "" if it fits."""
    lowest, optional = f.metadata.get("min", 0), f.type.endswith("None")
    whole = f.type.startswith("int")
    number = type(value) is int or (not whole and type(value) is float
                                    and math.isfinite(value))
    if (value is None and optional) or (value is not None and number and value >= lowest):
        return ""
    return (f"{'a whole' if whole else 'a finite'} number >= {lowest}"
            + (" or None" if optional else ""))


def rng_state() -> dict:
    """This process's Python, NumPy, torch and CUDA RNG states, as tensors and plain values."""
    np_state = np.random.get_state()
    return {"python": random.getstate(), "numpy": (np_state[0], torch.from_numpy(np_state[1]),
                                                   *np_state[2:]),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def shown(value: Any) -> str:
    """A value from a config file as an error shows it (bounded)."""
    return reprlib.repr(value) if isinstance(value, (dict, list)) else repr(value)


def _lookup(config: dict, key: str):
    for part in key.split("."):
        config = config.get(part, {}) if isinstance(config, dict) else {}
    return config


def first_difference(old: Any, new: dict, keys: tuple[str, ...]) -> tuple[str, Any, Any] | None:
    """The first of ``keys`` (dotted; a section compares the keys both configs have) on which the
    config dicts ``old`` and ``new`` differ: (key, old value, new value), or None. ``old`` comes
    from a file, so it may be anything."""
    for key in keys:
        a, b = _lookup(old, key), _lookup(new, key)
        if isinstance(a, dict) and isinstance(b, dict):
            diff = sorted(k for k in set(a) & set(b) if a[k] != b[k])  # keys both know
            if diff:
                return f"{key}.{diff[0]}", a.get(diff[0]), b.get(diff[0])
        elif a != b and a != {}:
            return key, a, b
    return None


def check_same_run(model_dir: Path, new: dict, last: Path,
                   keys: tuple[str, ...] = SAME_ON_RESUME) -> None:
    """Resuming with another model, vocabulary or corpus would fail later or train nonsense: say
    so. ``new``: the config of this run as a dict; compared with ``model_dir/config.yaml`` on
    ``keys`` (:data:`SAME_ON_RESUME`, :data:`DATA_ON_RESUME`)."""
    try:
        old = load_yaml(model_dir / CONFIG)
    except TransduceError:
        return  # nothing to compare with; loading the weights still checks the shapes
    found = first_difference(old, new, keys)
    if found:
        key, a, b = found
        raise TransduceError(  # (a bounded repr: config.yaml may be anything)
            f"config key '{key}' is {b!r} but the run in {model_dir} used {shown(a)}; to "
            f"resume from {last} set it back, or use --overwrite to start afresh, or train it "
            f"further in another model_dir with training.init_from: {model_dir}")


def restore(path: Path, model: torch.nn.Module, device: torch.device,
            components: dict[str, Any], world: World, seed: int) -> TrainerState:
    """Load a ``last/`` (the weights, and the trainer state of :meth:`TrainerState.to_file`) into
    ``model`` and ``components``, set this rank's RNG states, and return the position."""
    load_weights(model, path, device)
    saved = load_trainer_state(path)
    position, parts = TrainerState.from_file(saved, path)
    size = saved.get("world_size", 1)
    if size != world.size:
        raise TransduceError(
            f"{path}: written by a run with {size} process(es), resumed with "
            f"{world.size}; resume with the same number (transduce train --nproc {size}"
            ", or torchrun --nproc_per_node), or use --overwrite to start afresh")
    rngs = [parts["rng"], *saved.get("rank_rng", [])]
    try:
        for key, component in components.items():
            component.load_state_dict(parts[key])
        if world.rank < len(rngs):
            set_rng_state(rngs[world.rank])
        else:  # the initial last/ of a multi-process run: a dropout stream of its own
            torch.manual_seed(seed + world.rank)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
        raise TransduceError(f"{path / STATE}: the saved optimizer/schedule/RNG state does not "
                             f"fit this run ({type(e).__name__}: {str(e)[:100]}); use "
                             "--overwrite to start afresh") from None
    return position
