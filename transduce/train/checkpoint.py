"""Checkpoints: ``model.safetensors`` + ``meta.json`` (+ ``trainer_state.pt`` in ``last/``).

Nothing is ever unpickled: weights are safetensors, and the trainer state holds only tensors and
plain Python values, loaded with ``torch.load(weights_only=True)``. A checkpoint directory is
written under a temporary name, fsynced, and renamed into place, so a crash at any moment leaves
the previous checkpoint loadable (``<name>.old`` is picked up if the crash fell between renames).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from transduce.errors import TransduceError

FORMAT = "transduce-checkpoint"
FORMAT_VERSION = 1
WEIGHTS, META, STATE = "model.safetensors", "meta.json", "trainer_state.pt"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(path: Path, model: torch.nn.Module, meta: dict,
                    trainer_state: dict | None = None) -> None:
    """Write ``path/`` atomically: ``path.tmp/`` is filled and fsynced, then renamed."""
    path = Path(path)
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_model(model, str(tmp / WEIGHTS))
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "saved_at": time.time(), **meta}
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / STATE)
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
        _fsync(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise TransduceError(f"{path}: disk full while writing the checkpoint; the previous "
                                 "checkpoint is kept. Free some space and resume") from None
        raise TransduceError(f"{path}: cannot write the checkpoint ({e.strerror}); "
                             "check that model_dir is writable") from None


def find_checkpoint(path: Path) -> Path | None:
    """``path`` if complete, else ``path.old`` left by an interrupted save, else None."""
    for p in (Path(path), Path(path).with_name(Path(path).name + ".old")):
        if (p / WEIGHTS).is_file() and (p / META).is_file():
            return p
    return None


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TransduceError(f"{path / META}: unreadable checkpoint metadata ({e})") from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        raise TransduceError(f"{path / META}: not a transduce checkpoint")
    if meta["version"] > FORMAT_VERSION:
        raise TransduceError(f"{path / META}: checkpoint format version {meta['version']} is newer "
                             f"than this transduce understands ({FORMAT_VERSION}); upgrade transduce")
    return meta


def load_weights(model: torch.nn.Module, path: Path, device: str | torch.device = "cpu") -> dict:
    """Load ``path/model.safetensors`` into ``model`` (strict); returns the meta."""
    meta = read_meta(path)
    try:
        missing, unexpected = load_model(model, str(path / WEIGHTS), strict=False,
                                         device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise TransduceError(f"{path / WEIGHTS}: cannot load the weights ({e}); the file is "
                             "corrupt or truncated: use another checkpoint or retrain") from None
    if missing or unexpected:
        raise TransduceError(f"{path / WEIGHTS}: weights do not match the model in config.yaml "
                             f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return meta


def load_trainer_state(path: Path) -> dict:
    """The optimizer/schedule/RNG/data-position state; never unpickles arbitrary objects."""
    try:
        return torch.load(path / STATE, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file is not a safe state file
        raise TransduceError(f"{path / STATE}: refused to load the trainer state ({type(e).__name__}"
                             "); it is corrupt or not a transduce file. Remove it, or use "
                             "--overwrite to start afresh") from None
