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
import re
import shutil
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

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


def _io_errno(exc: BaseException) -> int | None:
    """The OS error number behind a failed write, whichever library raised it."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    m = re.search(r"os error (\d+)", str(exc))  # safetensors: "... (os error 28)"
    if m:
        return int(m.group(1))
    if "No space left on device" in str(exc):
        return errno.ENOSPC
    return None


def _same_tensor(t: torch.Tensor) -> tuple:
    """Equal for two state-dict entries that are one tensor (tied weights), not for two views
    of one buffer (the RNN weights cuDNN flattens into one)."""
    return (t.device, t.data_ptr(), t.shape, t.stride())


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as separate CPU tensors, a tied weight once (under its first name).

    safetensors refuses tensors that share memory, as tied weights and flattened RNN weights do
    (``safetensors.torch.save_model`` refuses the latter); :func:`_with_tied` restores the tied
    names on loading."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        if _same_tensor(t) not in seen:
            seen.add(_same_tensor(t))
            out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


def _with_tied(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` plus the names of tied weights stored once (under whichever name: files from
    ``safetensors.torch.save_model`` may keep another one than :func:`_weights`)."""
    groups: dict[tuple, list[str]] = {}
    for name, t in model.state_dict().items():
        groups.setdefault(_same_tensor(t), []).append(name)
    for names in groups.values():
        stored = next((n for n in names if n in state), None)
        for name in names:
            if stored is not None and name not in state:
                state[name] = state[stored]
    return state


def save_checkpoint(path: Path, model: torch.nn.Module, meta: dict,
                    trainer_state: dict | None = None) -> None:
    """Write ``path/`` atomically.

    ``path.tmp/`` is filled and each file fsynced; then ``path`` is renamed to ``path.old``,
    ``path.tmp`` to ``path``, the parent directory is fsynced and ``path.old`` removed. Whatever
    fails or is killed at any moment, ``path`` or ``path.old`` holds a complete checkpoint
    (:func:`find_checkpoint` takes whichever is there). On a failure ``path.tmp`` is removed; a
    full disk or any other OS error becomes a :class:`TransduceError` saying what was kept.
    """
    path = Path(path)
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(_weights(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "saved_at": time.time(), **meta}
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / STATE)
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
        if find_checkpoint(path) == path:  # keep a complete previous checkpoint until the end
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        elif path.exists():  # an incomplete leftover; path.old (if any) is the good one
            shutil.rmtree(path)
        tmp.rename(path)
        _fsync(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as e:  # noqa: BLE001 - clean up, then report or re-raise
        shutil.rmtree(tmp, ignore_errors=True)
        code = _io_errno(e) if isinstance(e, Exception) else None
        if code is None:
            raise
        kept = find_checkpoint(path)
        kept_msg = f"the previous checkpoint in {kept} is kept" if kept else \
            "no previous checkpoint was there"
        if code == errno.ENOSPC:
            raise TransduceError(f"{path}: disk full while writing the checkpoint; {kept_msg}. "
                                 "Free some space and run the same command to resume") from None
        raise TransduceError(f"{path}: cannot write the checkpoint ({os.strerror(code)}); "
                             f"{kept_msg}. Check that model_dir is writable") from None


def find_checkpoint(path: Path) -> Path | None:
    """``path`` if complete, else ``path.old`` left by an interrupted save, else None."""
    for p in (Path(path), Path(path).with_name(Path(path).name + ".old")):
        if (p / WEIGHTS).is_file() and (p / META).is_file():
            return p
    return None


def _brief(exc: BaseException) -> str:
    """An exception's first line, short enough for a one-line error message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_meta(path: Path) -> dict:
    """``meta.json``, checked: a transduce checkpoint of a format version this code reads."""
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TransduceError(f"{path / META}: unreadable checkpoint metadata ({_brief(e)}); the "
                             "checkpoint is damaged: use the other checkpoint (best/ or last/) "
                             "or retrain") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TransduceError(f"{path / META}: not a transduce checkpoint (no \"format\": "
                             f"\"{FORMAT}\"); point at a model_dir written by transduce train")
    version = meta.get("version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise TransduceError(f"{path / META}: unknown checkpoint format version {version!r} (this "
                             f"transduce reads versions 1 to {FORMAT_VERSION}); use the "
                             "transduce version that wrote it, or upgrade transduce")
    return meta


def load_weights(model: torch.nn.Module, path: Path, device: str | torch.device = "cpu") -> dict:
    """Load ``path/model.safetensors`` into ``model`` (strict); returns the meta.

    safetensors holds raw tensors only: a file that is anything else (a pickle, a truncated
    download) is refused without executing anything.
    """
    meta = read_meta(path)
    try:
        state = _with_tied(model, load_file(str(path / WEIGHTS), device=str(device)))
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        if "size mismatch" in str(e):
            raise TransduceError(f"{path / WEIGHTS}: weights do not match the model in config.yaml "
                                 f"({_brief(e)}); the config or vocabulary was changed after "
                                 "training: restore them or retrain") from None
        raise TransduceError(f"{path / WEIGHTS}: cannot load the weights ({_brief(e)}); the file "
                             "is corrupt or truncated: use another checkpoint or retrain") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise TransduceError(f"{path / WEIGHTS}: cannot load the weights ({_brief(e)}); the file "
                             "is corrupt or truncated: use another checkpoint or retrain") from None
    if missing or unexpected:
        raise TransduceError(f"{path / WEIGHTS}: weights do not match the model in config.yaml "
                             f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
                             "; the config was changed after training: restore it or retrain")
    return meta


STATE_KEYS = ("step", "epoch", "batch_in_epoch", "best_score", "bad_validations", "elapsed",
              "nonfinite", "optimizer", "schedule", "scaler", "rng")


def load_trainer_state(path: Path) -> dict:
    """The optimizer/schedule/RNG/data-position state; never unpickles arbitrary objects.

    ``torch.load(weights_only=True)`` only rebuilds tensors and plain containers; a pickle that
    asks for anything else (a function to call, a class to build) is refused before it runs.
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot override an explicit ``weights_only=True``.
    """
    try:
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file is not a safe state file
        raise TransduceError(f"{path / STATE}: refused to load the trainer state "
                             f"({type(e).__name__}); it is corrupt or not a transduce file. "
                             "Remove it, or use --overwrite to start afresh") from None
    missing = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise TransduceError(f"{path / STATE}: not a transduce trainer state (missing "
                             f"{', '.join(missing[:3])}); remove {path}, or use --overwrite to "
                             "start afresh")
    return state
