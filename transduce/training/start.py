"""Where a run starts: afresh, resumed from its own ``last/``, or from another model's weights.

Fine-tuning (``training.init_from: PARENT``, the parent's ``best/`` or a checkpoint folder of it)
starts a new run in a new model_dir from the parent's weights, with the parent's vocabularies and
SentencePiece models copied (a changed model section or tokenizer setting is an error naming the
key: they fix what the weights mean). ``training.reset`` lists what starts afresh; by default
everything (optimizer moments, learning-rate schedule, data position, early-stopping record).
What is left out of it is taken from the parent's ``last/`` trainer state. Resuming a run keeps
everything and is :func:`~transduce.training.state.restore`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from transduce import checkpoint as ck, model_dir as md
from transduce.config import Config
from transduce.data.codec import Codec, copy_codecs, has_codecs, load_codecs
from transduce.data.training_set import TrainingSet
from transduce.errors import TransduceError
from transduce.training.distributed import World
from transduce.training.state import (SAME_ON_RESUME, TrainerState, first_difference,
                                      restore, set_rng_state, shown)
from transduce.yaml_io import load_yaml

log = logging.getLogger("transduce")
# what a fine-tuned run must share with its parent: the network and what its ids mean
SAME_AS_PARENT = tuple(k for k in SAME_ON_RESUME if k != "training.optimizer")


def parent(init_from: str) -> tuple[Path, Path]:
    """(the parent's model_dir, the checkpoint to start from) for ``training.init_from``: a
    model_dir (its best/, else last/) or one checkpoint folder inside one."""
    p = Path(init_from)
    if (p / md.CONFIG).is_file():
        ckpt = ck.find_checkpoint(p / md.BEST) or ck.find_checkpoint(p / md.LAST)
        if ckpt is None:
            raise TransduceError(f"training.init_from: {p} holds no checkpoint (best/ or last/); "
                                 "train it first")
        return p, ckpt
    if ck.find_checkpoint(p) == p and (p.parent / md.CONFIG).is_file():
        return p.parent, p
    raise TransduceError(f"training.init_from: {p} is neither a trained model_dir nor a checkpoint "
                         "folder in one (e.g. runs/base or runs/base/last); check the path")


def inherit(config: Config) -> Config:
    """With ``training.init_from``, ``model.copy`` / ``coverage: auto`` become what the parent
    decided (the network must stay the parent's, whatever the new data looks like)."""
    m = config.model
    if not config.training.init_from or "auto" not in (m.copy, m.coverage):
        return config
    old = (load_yaml(parent(config.training.init_from)[0] / md.CONFIG) or {}).get("model", {})
    update = {k: old.get(k, False) for k in ("copy", "coverage") if getattr(m, k) == "auto"}
    return config.model_copy(update={"model": m.model_copy(update=update)})


def check_parent(config: Config) -> None:
    """Refuse a fine-tuning config whose network or tokenization differs from the parent's."""
    parent_dir, _ = parent(config.training.init_from)
    found = first_difference(load_yaml(parent_dir / md.CONFIG), config.to_dict(), SAME_AS_PARENT)
    if found:
        key, a, b = found
        raise TransduceError(f"config key '{key}' is {b!r} but the parent model in {parent_dir} "
                             f"(training.init_from) has {shown(a)}; fine-tuning keeps the "
                             f"parent's network and vocabularies: set it to {shown(a)}")


def codecs(config: Config, model_dir: Path, out: Path, resuming: bool,
           train: TrainingSet) -> tuple[Codec, Codec]:
    """The run's tokenizers and vocabularies: model_dir's own on resume, the parent's (copied to
    ``out``) with init_from, else built from the training text (or the cache's) into ``out``."""
    if resuming and has_codecs(model_dir):
        return load_codecs(config.data, model_dir)
    if config.training.init_from:
        parent_dir, _ = parent(config.training.init_from)
        copy_codecs(parent_dir, out)
        return load_codecs(config.data, out)
    return train.codecs(config.data, out)


def start(config: Config, resume_from: Path | None, model: torch.nn.Module,
          device: torch.device, components: dict[str, Any], world: World) -> TrainerState:
    """The training position to start at, with ``model`` and ``components`` (optimizer,
    schedule, scaler) set to match: restored from ``resume_from``, or from the parent with
    ``training.init_from`` (its weights; and from its last/ what ``training.reset`` keeps), or
    afresh."""
    if resume_from:
        return restore(resume_from, model, device, components, world, config.seed)
    state, t = TrainerState(), config.training
    if not t.init_from:
        return state
    parent_dir, ckpt = parent(t.init_from)
    ck.load_weights(model, ckpt, device)
    keep = [part for part in ("optimizer", "schedule", "data", "early_stopping")
            if part not in t.reset]
    log.info("fine-tuning from %s (%s); %s", ckpt, f"kept from its last/: {', '.join(keep)}"
             if keep else "optimizer, schedule, data position and early stopping afresh",
             "reset: " + (", ".join(t.reset) or "nothing"))
    if not keep:
        return state
    last = ck.find_checkpoint(parent_dir / md.LAST)
    if last is None or not (last / ck.STATE).is_file():
        raise TransduceError(f"training.init_from: {parent_dir} has no last/ trainer state to "
                             f"keep {', '.join(keep)} from; reset them (training.reset)")
    position, parts = TrainerState.from_file(ck.load_trainer_state(last), last)
    for part, names in (("optimizer", ("optimizer", "scaler")), ("schedule", ("schedule",))):
        if part in keep:
            for name in names:
                components[name].load_state_dict(parts[name])
    if "data" in keep:
        state.epoch, state.batch_in_epoch = position.epoch, position.batch_in_epoch
        set_rng_state(parts["rng"])
    if "early_stopping" in keep:
        state.best_score, state.bad_validations = position.best_score, position.bad_validations
    return state
