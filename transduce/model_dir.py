"""The model_dir: its layout, and loading a trained model from it.

    model_dir/
      config.yaml                  the resolved config
      vocab.{src,tgt}.txt          vocabularies (+ spm.{src,tgt}.model: see data/codec.py)
      best/  last/                 checkpoints (checkpoint.py): model.safetensors + meta.json
                                   (+ trainer_state.pt in last/)
      kept/                        step-named checkpoints (checkpoints.py)
      ctranslate2/                 instead of best/ and last/, in a CTranslate2 export (its model
                                   directory: transduce export --ctranslate2, decode/ctranslate2.py)
      train.log  metrics.jsonl  tensorboard/

Training writes it (``training/``), every other command reads it through :func:`load_model`.
A model_dir is untrusted input: training never writes through a symbolic link in it nor over
files transduce did not write (:func:`check_model_dir`), and loading checks sizes, types and
values before using them (``checkpoint.check_weights``, ``checkpoint.load_weights``).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from transduce.checkpoint import (STATE, WEIGHTS, check_weights, find_checkpoint, load_weights,
                                  unloadable)
from transduce.config import Config, load_config
from transduce.data.codec import CODEC_FILES, Codec, load_codecs
from transduce.errors import TransduceError
from transduce.model.seq2seq import Seq2Seq, build_model

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
        raise unloadable(file, e) from None
    return model
