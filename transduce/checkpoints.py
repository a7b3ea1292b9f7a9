"""Kept checkpoints, and the average of several checkpoints' weights.

With ``training.keep_last: N`` or ``keep_best: N`` above 1, each validation also writes the model
to ``model_dir/kept/step-<step>/`` (weights and meta.json with the dev scores, written atomically
like best/ and last/). The N most recent and the N best by the early-stopping metric stay; the
others are removed, each renamed to a ``.del`` name first, so a kill at any moment leaves every
``step-*`` folder complete.

Averaging the weights of the last few checkpoints (Vaswani et al., 2017; Junczys-Dowmunt et al.,
2016) smooths the noise of the final updates, usually for a small gain at no decoding cost:
:func:`write_average` makes a model_dir whose ``best/`` is the average, loadable by every command.
"""
from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Callable

import torch

from transduce import checkpoint as ck, model_dir as md
from transduce.config import TrainingConfig
from transduce.data.codec import copy_codecs
from transduce.errors import TransduceError

log = logging.getLogger("transduce")
PREFIX = "step-"
HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "loss": False, "ppl": False}  # by metric


def kept(model_dir: Path) -> list[tuple[int, Path, dict]]:
    """The complete kept checkpoints of ``model_dir``: (step, path, meta), oldest first."""
    root = Path(model_dir) / md.KEPT
    found = []
    for p in sorted(root.glob(PREFIX + "*")) if root.is_dir() else []:
        if p.name[len(PREFIX):].isdigit() and ck.find_checkpoint(p) == p:
            found.append((int(p.name[len(PREFIX):]), p, ck.read_meta(p)))
    return sorted(found, key=lambda x: x[0])


def _best_first(entries: list[tuple[int, Path, dict]], metric: str
                ) -> list[tuple[int, Path, dict]]:
    scored = [e for e in entries if metric in e[2].get("scores", {})]
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    return sorted(scored, key=lambda e: sign * e[2]["scores"][metric])


def keep(model_dir: Path, model: torch.nn.Module, meta: dict, t: TrainingConfig) -> None:
    """With ``t.keep_last`` or ``t.keep_best`` above 1: write ``kept/step-<meta["step"]>/`` and
    remove the kept checkpoints that are neither among the ``keep_last`` most recent nor the
    ``keep_best`` best by ``t.early_stopping_metric``."""
    if t.keep_last == 1 and t.keep_best == 1:
        return
    ck.save_checkpoint(Path(model_dir) / md.KEPT / f"{PREFIX}{meta['step']:08d}", model, meta)
    entries = kept(model_dir)
    stay = {e[1] for e in entries[-t.keep_last:]} | \
        {e[1] for e in _best_first(entries, t.early_stopping_metric)[:t.keep_best]}
    for _, path, _ in entries:
        if path not in stay:
            gone = path.with_name(path.name + ".del")
            shutil.rmtree(gone, ignore_errors=True)
            path.rename(gone)  # atomic: never a half-removed step-* folder
            shutil.rmtree(gone)


def select(model_dir: Path, last: int | None = None, best: int | None = None,
           metric: str = "loss") -> list[Path]:
    """The ``last`` most recent or the ``best`` best (by ``metric``) kept checkpoints, oldest
    first."""
    entries = kept(model_dir)
    if not entries:
        raise TransduceError(f"{model_dir}: no kept checkpoints ({md.KEPT}/step-*) to average; "
                             "train with training.keep_last: N (or keep_best: N) above 1")
    n = last or best or 0
    chosen = entries[-n:] if last else _best_first(entries, metric)[:n]
    if len(chosen) < n:
        raise TransduceError(f"{model_dir}: {n} checkpoints asked for, {len(chosen)} kept "
                             f"({', '.join(p.name for _, p, _ in entries)}); ask for fewer")
    return sorted(p for _, p, _ in chosen)


def average(model: torch.nn.Module, paths: list[Path]) -> torch.nn.Module:
    """``model`` holding the mean of the weights in ``paths`` (each checked and loaded like any
    checkpoint: names, shapes, dtypes, finite values)."""
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        ck.load_weights(model, path)
        for name, t in model.state_dict().items():
            total[name] = total[name] + t.double() if name in total else t.double()
    model.load_state_dict({k: (v / len(paths)).to(model.state_dict()[k].dtype)
                           for k, v in total.items()})
    return model


def average_at_end(model_dir: Path, model: torch.nn.Module, n: int,
                   score: Callable[[torch.nn.Module], dict], metric: str, best: float | None,
                   meta: dict) -> dict | None:
    """``training.average_at_end``: score the average of the last ``n`` kept checkpoints with
    ``score`` (the dev scores) and write it as ``model_dir/best/`` if its ``metric`` beats
    ``best`` (the best single checkpoint's). ``model`` is left as it is. Returns the event for
    the run log, or None when fewer than ``n`` checkpoints were kept (a warning)."""
    entries = kept(model_dir)
    if len(entries) < n:
        log.warning("training.average_at_end: %d checkpoints asked for, %d kept (training ended "
                    "after %d validations); best/ is not an average", n, len(entries),
                    len(entries))
        return None
    paths = [p for _, p, _ in entries[-n:]]
    steps = [s for s, _, _ in entries[-n:]]
    averaged = average(copy.deepcopy(model), paths)
    scores = score(averaged)
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    better = best is None or sign * (scores[metric] - best) > 0
    if better:
        ck.save_checkpoint(Path(model_dir) / md.BEST, averaged,
                           {**meta, "scores": scores, "averaged_steps": steps})
    log.info("average of the last %d checkpoints (steps %s): dev %s %.4f against the best "
             "single checkpoint's %s; %s", n, ", ".join(map(str, steps)), metric, scores[metric],
             "none" if best is None else f"{best:.4f}",
             "best/ is now the average" if better else "best/ stays")
    return {"event": "average", "steps": steps, "dev_loss": scores["loss"],
            "bleu": scores["bleu"], "chrf": scores["chrf"], "best": better}


def refuse_nonempty(out: Path) -> None:
    """An export or average goes to a new or empty directory, never over files."""
    if out.exists() and any(out.iterdir()):
        raise TransduceError(f"{out}: exists and is not empty; choose a new output directory")


def new_model_dir(model_dir: Path, out: Path) -> None:
    """Create ``out`` with ``model_dir``'s config.yaml and tokenizer/vocabulary files: what a
    model_dir made from another one (average, export) needs besides its weights."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_dir / md.CONFIG, out / md.CONFIG)
    copy_codecs(model_dir, out)


def write_average(model_dir: str | Path, out: str | Path, paths: list[Path]) -> Path:
    """A new model_dir ``out``: ``model_dir``'s config and vocabularies, and as ``best/`` the
    average of the checkpoints ``paths``. Returns ``out``."""
    model_dir, out = Path(model_dir), Path(out)
    refuse_nonempty(out)
    config, _, _, model, _ = md.load_model(model_dir, device="cpu")
    average(model, paths)
    new_model_dir(model_dir, out)
    steps = [ck.read_meta(p).get("step") for p in paths]
    ck.save_checkpoint(out / md.BEST, model, {"step": max(steps), "averaged_steps": steps,
                                              "averaged_from": str(model_dir)})
    return out


def write_int8(model_dir: str | Path, out: str | Path, checkpoint: str = md.BEST) -> Path:
    """A new model_dir ``out``: ``model_dir``'s config and vocabularies, and as ``best/`` its
    ``checkpoint`` with the decoder's linear layers in int8 (model/quantize.py), stored as
    integers: it loads as quantized, on the CPU, without quantizing again. Returns ``out``."""
    from transduce.model.quantize import int8_weights, quantize

    model_dir, out = Path(model_dir), Path(out)
    refuse_nonempty(out)
    _, _, _, model, dev = md.load_model(model_dir, checkpoint, device="cpu")
    found = ck.find_checkpoint(model_dir / checkpoint)
    meta = ck.read_meta(found) if found else {}
    model = quantize(model.eval(), "int8", dev)
    new_model_dir(model_dir, out)
    keep = {k: meta[k] for k in ("step", "epoch", "scores", "n_params") if k in meta}
    ck.save_checkpoint(out / md.BEST, model, {**keep, "quantized": "int8",
                                              "exported_from": str(model_dir)},
                       weights=int8_weights(model))
    return out
