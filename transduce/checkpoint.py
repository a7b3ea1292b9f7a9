"""One checkpoint folder (``best/``, ``last/``, ``kept/step-N/``): writing it atomically, finding
it after an interrupted write, and reading it back safely.

    <checkpoint>/
      model.safetensors            the weights (a tied weight stored once)
      meta.json                    format, version, step, scores, ...
      trainer_state.pt             optimizer, schedule, RNG, data position (last/ only)

Nothing is ever unpickled (:func:`load_weights`, :func:`load_trainer_state`), and a crash at any
moment leaves the previous checkpoint loadable (:func:`save_checkpoint`).
"""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

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


def _write(path: Path, data: bytes) -> None:
    """Create ``path`` (never through a symbolic link; mode 0666 less the umask, as every file
    transduce writes), write ``data`` and fsync it: every failure is Python's OSError."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666),
              "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tied_groups(model: torch.nn.Module) -> list[list[str]]:
    """The state dict's names grouped by tensor: the names of one tied weight together, but not
    two views of one buffer (the RNN weights cuDNN flattens into one); meta tensors too."""
    groups: dict[int, list[str]] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(t), []).append(name)
    return list(groups.values())


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as separate CPU tensors, a tied weight once (under its first name).

    safetensors refuses tensors that share memory, as tied weights and flattened RNN weights do
    (``safetensors.torch.save_model`` refuses the latter); :func:`_with_tied` restores the tied
    names on loading."""
    state = model.state_dict()
    return {names[0]: state[names[0]].detach().to("cpu", copy=True).contiguous()
            for names in _tied_groups(model)}


def _with_tied(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` plus the names of tied weights stored once (under whichever name: files from
    ``safetensors.torch.save_model`` may keep another one than :func:`_weights`)."""
    for names in _tied_groups(model):
        stored = [n for n in names if n in state]
        state.update({n: state[stored[0]] for n in names if stored and n not in state})
    return state


def save_checkpoint(path: Path, model: torch.nn.Module, meta: dict,
                    trainer_state: dict | None = None,
                    weights: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``path/`` atomically (the weights: ``model``'s, or ``weights`` as given).

    ``path.tmp/`` is filled, each file written from bytes in memory by :func:`_write`; then
    ``path`` is renamed to ``path.old``, ``path.tmp`` to ``path``, the parent directory is fsynced
    and ``path.old`` removed. Whatever fails or is killed at any moment, ``path`` or ``path.old``
    holds a complete checkpoint (:func:`find_checkpoint` takes whichever is there). On a failure
    ``path.tmp`` is removed; a full disk or any other OS error becomes a :class:`TransduceError`
    saying what was kept.
    """
    path = Path(path)
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        weights = _weights(model) if weights is None else weights
        _write(tmp / WEIGHTS, save(weights, metadata={"format": "pt"}))
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "saved_at": time.time(), **meta}
        _write(tmp / META, json.dumps(meta, indent=1).encode("utf-8"))
        if trainer_state is not None:
            buf = io.BytesIO()  # torch's own file writer hides the OS error: write the bytes here
            torch.save(trainer_state, buf)
            _write(tmp / STATE, buf.getvalue())
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
        code = e.errno if isinstance(e, OSError) else None
        if not code:
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
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
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


def unloadable(file: Path, e: Exception) -> TransduceError:
    return TransduceError(f"{file}: cannot load the weights ({_brief(e)}); the file is corrupt or "
                          "truncated: use another checkpoint or retrain")


def check_weights(model: torch.nn.Module, path: Path) -> dict:
    """``path``'s meta, and its weights' names and shapes against ``model``'s (which may be on the
    meta device), from the header of ``model.safetensors`` alone: nothing is allocated. The
    weights of ``transduce export --int8`` are compared by the shapes of their integers."""
    meta, file = read_meta(path), path / WEIGHTS
    try:
        with safe_open(str(file), framework="pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise unloadable(file, e) from None
    if meta.get("quantized") == "int8":  # X.weight.int8 has X.weight's shape; scales aside
        shapes = {k.removesuffix(".int8"): v for k, v in shapes.items()
                  if not k.endswith((".weight.scale", ".weight.zero_point"))}
    shapes = _with_tied(model, shapes)
    expected = {k: list(t.shape) for k, t in model.state_dict().items()}
    missing, unexpected = set(expected) - set(shapes), set(shapes) - set(expected)
    if missing or unexpected:
        raise TransduceError(f"{file}: weights do not match the model in config.yaml (missing "
                             f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); the "
                             "config was changed after training: restore it or retrain")
    bad = next((k for k in expected if expected[k] != shapes[k]), None)
    if bad is not None:
        raise TransduceError(f"{file}: weights do not match the model in config.yaml (size "
                             f"mismatch for {bad}: {shapes[bad]} in the file, {expected[bad]} in "
                             "the model); the config or vocabulary was changed after training: "
                             "restore them or retrain")
    return meta


def load_weights(model: torch.nn.Module, path: Path, device: str | torch.device = "cpu") -> dict:
    """Load ``path/model.safetensors`` into ``model`` (strict), after :func:`check_weights`;
    returns the meta. Each weight must have the model's dtype and finite values.

    safetensors holds raw tensors only: a file that is anything else (a pickle, a truncated
    download) is refused without executing anything.
    """
    meta, file = check_weights(model, path), path / WEIGHTS
    try:
        state = _with_tied(model, load_file(str(file), device=str(device)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise unloadable(file, e) from None
    for name, want in model.state_dict().items():
        t = state[name]
        if t.dtype != want.dtype or (t.is_floating_point() and not torch.isfinite(t).all()):
            what = f"is {t.dtype}, not {want.dtype}" if t.dtype != want.dtype else \
                "holds NaN or inf values"
            raise TransduceError(f"{file}: weight {name} {what}; the file is damaged or not "
                                 "written by transduce: use another checkpoint or retrain")
    model.load_state_dict(state)
    return meta


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
    if not isinstance(state, dict):
        raise TransduceError(f"{path / STATE}: not a transduce trainer state; remove {path}, "
                             "or use --overwrite to start afresh")
    return state
