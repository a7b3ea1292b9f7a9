"""The model_dir: its layout, checkpoints, and loading a trained model from it.

    model_dir/
      config.yaml                  the resolved config
      vocab.{src,tgt}.txt          vocabularies (+ spm.{src,tgt}.model: see data/codec.py)
      best/  last/                 model.safetensors + meta.json (+ trainer_state.pt in last/)
      ctranslate2/                 instead of best/ and last/, in a CTranslate2 export (its model
                                   directory: transduce export --ctranslate2, decode/ctranslate2.py)
      train.log  metrics.jsonl  tensorboard/

Training writes it (``training/``), every other command reads it through :func:`load_model`.
Nothing is ever unpickled (:func:`load_weights`, :func:`load_trainer_state`), and a crash at any
moment leaves the previous checkpoint loadable (:func:`save_checkpoint`). A model_dir is untrusted
input: training never writes through a symbolic link in it nor over files transduce did not write
(:func:`check_model_dir`), and loading checks sizes, types and values before using them.
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

from transduce.config import Config, load_config
from transduce.data.codec import CODEC_FILES, Codec, load_codecs
from transduce.errors import TransduceError
from transduce.model.seq2seq import Seq2Seq, build_model

FORMAT = "transduce-checkpoint"
FORMAT_VERSION = 1
WEIGHTS, META, STATE = "model.safetensors", "meta.json", "trainer_state.pt"
CONFIG, TRAIN_LOG, METRICS, TENSORBOARD = "config.yaml", "train.log", "metrics.jsonl", "tensorboard"
BEST, LAST, KEPT = "best", "last", "kept"  # kept/: step-named checkpoints (checkpoints.py)
CTRANSLATE2 = "ctranslate2"  # a CTranslate2 export's model (decode/ctranslate2.py)
PROBE, STAGE = ".write-test", ".overwrite.tmp"  # see prepare
TRAIN_LOG_MARK = "transduce train writes this model_dir"  # the first line of a run's train.log
# every name a run writes in a model_dir, checkpoints first (``--overwrite`` removes these and
# nothing else)
ENTRIES = (*(c + suffix for c in (BEST, LAST) for suffix in ("", ".old", ".tmp")),
           KEPT, CONFIG, *CODEC_FILES, TRAIN_LOG, METRICS, TENSORBOARD)
MAX_OUTPUT_LEN = 2048  # tokens: the most that a model_dir's own decoding settings may ask for


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when there is a GPU, else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise TransduceError("training.device=cuda but no CUDA device is available; "
                             "use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def check_model_dir(model_dir: Path) -> None:
    """Refuse, before anything is written, a model_dir that is not a directory, one where a name
    transduce writes is a symbolic link or holds one (nothing is ever written through a link), and
    one that holds files of those names that transduce did not write: a model_dir is a run's when
    it holds a checkpoint, or a train.log that begins with :data:`TRAIN_LOG_MARK` (a run that has
    not saved one yet)."""
    if model_dir.exists() and not model_dir.is_dir():
        raise TransduceError(f"{model_dir}: model_dir exists and is not a directory; "
                             "choose another model_dir")
    names = [n for n in (*ENTRIES, PROBE, STAGE) if os.path.lexists(model_dir / n)]
    for p in (model_dir / n for n in names):
        inside = p.rglob("*") if p.is_dir() and not p.is_symlink() else []
        link = next((q for q in (p, *inside) if q.is_symlink()), None)
        if link is not None:
            raise TransduceError(f"{link}: a symbolic link in model_dir; transduce never writes "
                                 "through links: replace it by a copy of its target or remove "
                                 "it, or choose another model_dir")
    foreign = [n for n in names if n in ENTRIES]
    if foreign and not _is_run(model_dir):
        raise TransduceError(f"{model_dir}: model_dir holds {', '.join(foreign[:3])} but no "
                             "checkpoint or train.log of a transduce run, so transduce did not "
                             "write them (training would overwrite them, and --overwrite delete "
                             "them); choose a new or empty model_dir (e.g. runs/NAME) or move "
                             "those files away")


def _is_run(model_dir: Path) -> bool:
    if any(find_checkpoint(model_dir / c) for c in (BEST, LAST)):
        return True
    if not (model_dir / TRAIN_LOG).is_file():
        return False
    with open(model_dir / TRAIN_LOG, "rb") as f:
        return TRAIN_LOG_MARK.encode() in f.read(200).split(b"\n")[0]


def clear(model_dir: Path) -> None:
    """Remove what a run wrote (:data:`ENTRIES`), nothing else."""
    for name in ENTRIES:
        p = model_dir / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def prepare(model_dir: Path, overwrite: bool = False) -> Path:
    """Create ``model_dir`` and check that files can be written in it; returns where the run's
    files go: ``model_dir``, or with ``overwrite`` an empty :data:`STAGE` inside it, where the new
    run is built while the old one stays as it was until :func:`replace_run` (a stage left by a
    failed or killed start is removed)."""
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        probe = model_dir / PROBE
        probe.write_text("")
        probe.unlink()
        shutil.rmtree(model_dir / STAGE, ignore_errors=True)
        if overwrite:
            (model_dir / STAGE).mkdir()
        return model_dir / STAGE if overwrite else model_dir
    except OSError as e:
        raise TransduceError(f"{model_dir}: model_dir is not writable ({e.strerror}); choose "
                             "another model_dir or fix its permissions") from None


def replace_run(model_dir: Path, stage: Path) -> None:
    """``--overwrite``, once the run built in ``stage`` has started: the old run's files go
    (checkpoints first: a crash meanwhile leaves none, so the next start begins afresh) and the
    new ones are renamed into place."""
    clear(model_dir)
    for p in stage.iterdir():
        p.rename(model_dir / p.name)
    stage.rmdir()


def resumable(model_dir: Path) -> Path | None:
    """``last/`` (or ``last.old``) to resume from; refuses to start over on a trained model."""
    last = find_checkpoint(model_dir / LAST)
    if last is not None:
        if not (last / STATE).is_file():
            raise TransduceError(f"{last}: checkpoint has no {STATE}, so training cannot "
                                 "resume from it; use --overwrite to start afresh (this "
                                 "deletes the checkpoints) or choose another model_dir")
        return last
    best = find_checkpoint(model_dir / BEST)
    if best is not None:
        raise TransduceError(f"{best}: model_dir already holds a trained model but no last/ "
                             "to resume from; use --overwrite to start afresh (this deletes "
                             "it) or choose another model_dir")
    return None


def load_config_and_codecs(model_dir: str | Path) -> tuple[Config, Codec, Codec]:
    """``model_dir``'s config (its decoding lengths capped) and codecs; every missing or damaged
    file is a one-line error."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise TransduceError(f"{model_dir}: model directory not found")
    if not (model_dir / CONFIG).is_file():
        raise TransduceError(f"{model_dir}/{CONFIG}: missing; is this a trained model_dir?")
    config = load_config(model_dir / CONFIG)
    # decoding settings from a file: capped like the inputs (an explicit per-call max_len rules)
    cap = min(4 * config.data.max_tgt_len, MAX_OUTPUT_LEN)
    config.decoding.max_len = min(config.decoding.max_len or cap, cap)
    try:
        src, tgt = load_codecs(config.data, model_dir)
    except (OSError, RuntimeError, UnicodeDecodeError) as e:  # e.g. a damaged spm.*.model
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        raise TransduceError(f"{model_dir}: cannot read the tokenizer/vocabulary files "
                             f"({type(e).__name__}: {why}); the model_dir is damaged: copy "
                             "it again or retrain") from None
    return config, src, tgt


def load_model(model_dir: str | Path, checkpoint: str = BEST, device: str = "auto"
               ) -> tuple[Config, Codec, Codec, Seq2Seq, torch.device]:
    """``model_dir/<checkpoint>`` (falling back to the other of best/last) with its config and
    codecs, on ``device``; every missing or damaged file is a one-line error."""
    model_dir = Path(model_dir)
    config, src, tgt = load_config_and_codecs(model_dir)
    ckpt = next(filter(None, (find_checkpoint(model_dir / n) for n in (checkpoint, BEST, LAST))),
                None)
    if ckpt is None and (model_dir / CTRANSLATE2).is_dir():
        raise TransduceError(f"{model_dir}: a CTranslate2 export, which decodes alone (translate, "
                             "test, score, serve: not in an ensemble, not exported or averaged "
                             "again); use the model_dir it was exported from")
    if ckpt is None:
        raise TransduceError(f"{model_dir}: no checkpoint (best/ or last/) found; "
                             "train the model first")
    with torch.device("meta"):  # the sizes in config.yaml, checked before anything is allocated
        int8 = check_weights(build_model(config.model, len(src.vocab), len(tgt.vocab)),
                             ckpt).get("quantized") == "int8"
    model = build_model(config.model, len(src.vocab), len(tgt.vocab))
    if int8:  # transduce export --int8: CPU only
        dev = pick_device("cpu" if device == "auto" else device)
        return config, src, tgt, load_int8(model, ckpt, dev), dev
    dev = pick_device(device)
    load_weights(model, ckpt, dev)
    return config, src, tgt, model.to(dev), dev


def load_int8(model: Seq2Seq, path: Path, device: torch.device) -> Seq2Seq:
    """``model`` quantized as ``transduce export --int8`` did, with ``path``'s int8 weights."""
    from transduce.model.quantize import load_int8_weights, quantize

    model = quantize(model.eval(), "int8", device)
    file = path / WEIGHTS
    try:
        state = load_file(str(file))
        bad = next((k for k, t in state.items() if t.is_floating_point()
                    and not torch.isfinite(t).all()), None)
        if bad is not None:
            raise ValueError(f"weight {bad} holds NaN or inf values")
        load_int8_weights(model, state)
    except KeyError as e:
        raise TransduceError(f"{file}: int8 weights do not match the model in config.yaml "
                             f"({e.args[0]} missing or unexpected); export the model again"
                             ) from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unloadable(file, e) from None
    return model


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


def _unloadable(file: Path, e: Exception) -> TransduceError:
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
        raise _unloadable(file, e) from None
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
        raise _unloadable(file, e) from None
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
