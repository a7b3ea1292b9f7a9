"""The training loop: data -> batches -> loss -> updates, with validation, checkpoints and resume.

Read top to bottom: :meth:`Trainer.__init__` prepares model_dir, data, model and optimizer (or
restores them from ``last/``); :meth:`Trainer.train` runs epochs of length-bucketed batches;
:meth:`Trainer.validate` scores the dev set and keeps ``best/``; :meth:`Trainer.save` writes
``last/`` with everything needed to continue exactly where training stopped.
"""
from __future__ import annotations

import json
import logging
import math
import random
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from transduce.config import Config, save_config
from transduce.data.batching import Batch, batch_indices, make_batch
from transduce.data.codec import Codec, build_codecs, has_codecs, load_codecs
from transduce.data.corpus import filter_pairs, read_parallel, resolve_pair
from transduce.data.vocabulary import PAD_ID
from transduce.decode.translator import Translator, pick_device
from transduce.errors import TransduceError
from transduce.evaluate import evaluate, perplexity
from transduce.model.seq2seq import build_model
from transduce.train.checkpoint import (find_checkpoint, load_trainer_state, load_weights,
                                        save_checkpoint)
from transduce.train.optim import Schedule, build_optimizer

log = logging.getLogger("transduce")
HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "loss": False, "ppl": False}
MODEL_DIR_ENTRIES = ("config.yaml", "vocab.src.txt", "vocab.tgt.txt", "spm.src.model",
                     "spm.tgt.model", "best", "last", "best.old", "last.old", "best.tmp",
                     "last.tmp", "train.log", "metrics.jsonl", "tensorboard")


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; ``last/`` was saved. ``exit_code`` is 130 or 143."""

    def __init__(self, signum: int, step: int, model_dir: Path):
        self.exit_code = 128 + signum
        super().__init__(f"interrupted at step {step}; last/ saved. Resume with the same "
                         f"command (model_dir {model_dir})")


def _setup_logging(model_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(model_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return handler


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"python": random.getstate(), "numpy": (np_state[0], torch.from_numpy(np_state[1]),
                                                   *np_state[2:]),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, config: Config, overwrite: bool = False):
        self.cfg = config
        t = config.training
        self.model_dir = Path(config.model_dir)
        if self.model_dir.exists() and not self.model_dir.is_dir():
            raise TransduceError(f"{self.model_dir}: model_dir exists and is not a directory; "
                                 "choose another model_dir")
        if overwrite:
            for name in MODEL_DIR_ENTRIES:
                p = self.model_dir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        try:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            probe = self.model_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise TransduceError(f"{self.model_dir}: model_dir is not writable ({e.strerror}); "
                                 "choose another model_dir or fix its permissions") from None
        self._log_handler = _setup_logging(self.model_dir)
        self.resume_from = find_checkpoint(self.model_dir / "last")
        if self.resume_from and not (self.resume_from / "trainer_state.pt").is_file():
            self.resume_from = None
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = pick_device(t.device)
        if t.precision == "fp16" and self.device.type != "cuda":
            raise TransduceError("training.precision=fp16 needs a CUDA device; use bf16 on CPU")
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)

        # ---- data ------------------------------------------------------------------------
        d = config.data
        if not d.train:
            raise TransduceError("config key 'data.train' is not set; give the training file "
                                 "prefix (data/train for data/train.<src_lang>, .<tgt_lang>)")
        src_path, tgt_path = resolve_pair(d.train, d.src_lang, d.tgt_lang)
        train_src, train_tgt = read_parallel(src_path, tgt_path)
        if self.resume_from and has_codecs(self.model_dir):
            self.src, self.tgt = load_codecs(d, self.model_dir)
        else:
            self.src, self.tgt = build_codecs(d, self.model_dir, train_src, train_tgt)
        save_config(config, self.model_dir / "config.yaml")
        src_tok = [self.src.tokenize(s) for s in train_src]
        tgt_tok = [self.tgt.tokenize(s) for s in train_tgt]
        keep, _ = filter_pairs(src_tok, tgt_tok, d.max_src_len, d.max_tgt_len, src_path,
                               d.skip_bad_pairs)
        self.train_src = [np.array(self.src.vocab.encode(src_tok[i]), dtype=np.int64)
                          for i in keep]
        self.train_tgt = [np.array(self.tgt.vocab.encode(tgt_tok[i]), dtype=np.int64)
                          for i in keep]
        self.src_lens = np.array([len(s) for s in self.train_src])
        self.tgt_lens = np.array([len(s) for s in self.train_tgt])
        log.info("training data: %d pairs from %s (mean %.1f source / %.1f target tokens)",
                 len(keep), src_path, self.src_lens.mean(), self.tgt_lens.mean())
        self.dev_src: list[str] = []
        self.dev_ref: list[str] = []
        if d.dev:
            self.dev_src, self.dev_ref = read_parallel(*resolve_pair(d.dev, d.src_lang,
                                                                     d.tgt_lang))

        # ---- model and optimizer ------------------------------------------------------------
        self.model = build_model(config.model, len(self.src.vocab), len(self.tgt.vocab))
        self.model.to(self.device)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s encoder (%s), %s attention, input feeding %s, %s parameters",
                 config.model.cell, "bidirectional" if config.model.bidirectional else
                 "unidirectional", config.model.attention,
                 "on" if config.model.input_feeding else "off", f"{n_params:,}")
        self.n_params = n_params
        self.optimizer = build_optimizer(t, self.model.parameters())
        self.batches_per_epoch = len(self._epoch_batches(0))
        total = t.max_steps or math.ceil(t.max_epochs * self.batches_per_epoch / t.accumulate)
        self.total_steps = total
        self.metric = t.early_stopping_metric
        self.schedule = Schedule(t, self.optimizer, total, HIGHER_IS_BETTER[self.metric])
        self.scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")

        # ---- training position (restored on resume) -----------------------------------------
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_score: float | None = None
        self.bad_validations = 0
        self.elapsed = 0.0  # training seconds so far, validation excluded
        self.nonfinite = 0  # updates skipped because the loss was NaN/inf
        if self.resume_from:
            self._restore(self.resume_from)

    # ---- batches ----------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        t = self.cfg.training
        return batch_indices(self.src_lens, self.tgt_lens, batch_size=t.batch_size,
                             batch_tokens=t.batch_tokens, seed=self.cfg.seed, epoch=epoch)

    def _batch(self, idx: np.ndarray) -> Batch:
        return make_batch([self.train_src[i] for i in idx],
                          [self.train_tgt[i] for i in idx]).to(self.device)

    def _autocast(self):
        p = self.cfg.training.precision
        if p == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if p == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ---- one update -------------------------------------------------------------------------
    def _update(self, batches: list[Batch]) -> float:
        """Forward/backward over ``batches`` (gradient accumulation), one optimizer step.
        Returns the summed smoothed cross-entropy; NaN if the update was skipped."""
        t = self.cfg.training
        n_tokens = sum(b.n_tgt_tokens for b in batches)
        self.model.train()
        total = torch.zeros((), device=self.device)
        for b in batches:
            with self._autocast():
                logits, _ = self.model(b.src, b.src_lens, b.tgt_in)  # (batch, tgt_len, vocab)
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), b.tgt_out.view(-1),
                                   ignore_index=PAD_ID, label_smoothing=t.label_smoothing,
                                   reduction="sum")
            self.scaler.scale(loss / n_tokens).backward()
            total += loss.detach()
        total_f = float(total)
        if not math.isfinite(total_f):
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite += 1
            log.warning("step %d: loss is %s; update skipped (%d so far)", self.step + 1,
                        total_f, self.nonfinite)
            if self.nonfinite >= 10:
                raise TransduceError(f"{self.nonfinite} updates had a NaN/inf loss; training "
                                     "stopped (checkpoints intact). Lower training.lr or "
                                     "set training.clip_grad_norm")
            return float("nan")
        if t.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        return total_f

    # ---- the loop -----------------------------------------------------------------------------
    def train(self) -> Translator:
        """Train until max_epochs / max_steps / max_minutes / early stopping; returns best."""
        t = self.cfg.training
        stop_signal: list[int] = []

        def on_signal(signum, _frame):
            stop_signal.append(signum)

        old_handlers = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[s] = signal.signal(s, on_signal)
            except ValueError:  # not the main thread
                pass
        if self.resume_from:
            log.info("resuming from step %d (epoch %d, batch %d)", self.step, self.epoch + 1,
                     self.batch_in_epoch)
        log.info("training: %d batches per epoch, up to %d updates, device %s, %s",
                 self.batches_per_epoch, self.total_steps, self.device, t.precision)
        progress = _Progress(self.total_steps, self.step)
        window = {"loss": 0.0, "tok": 0, "pad": 0, "time": 0.0, "updates": 0}
        reason = "max_epochs reached"
        try:
            while self.epoch < t.max_epochs:
                batches = self._epoch_batches(self.epoch)
                while self.batch_in_epoch < len(batches):
                    group = batches[self.batch_in_epoch:self.batch_in_epoch + t.accumulate]
                    tic = time.perf_counter()
                    data = [self._batch(idx) for idx in group]
                    loss = self._update(data)
                    self.batch_in_epoch += len(group)
                    self.step += 1
                    dt = time.perf_counter() - tic
                    self.elapsed += dt
                    if math.isfinite(loss):
                        window["loss"] += loss
                        window["tok"] += sum(b.n_tgt_tokens for b in data)
                        window["pad"] += sum(b.n_pad for b in data)
                    window["time"] += dt
                    window["updates"] += 1
                    if self.step % t.log_every == 0:
                        self._log_train(window, progress)
                        window = {"loss": 0.0, "tok": 0, "pad": 0, "time": 0.0, "updates": 0}
                    progress.update(self.step)
                    stop = self._should_stop()
                    if stop_signal:
                        self.save()
                        progress.close()
                        raise TrainingInterrupted(stop_signal[0], self.step, self.model_dir)
                    if self.step % t.validate_every == 0 or stop:
                        if self.validate():
                            stop = stop or "early stopping: no improvement in %d validations" \
                                % t.patience
                        self.save()
                    if stop:
                        reason = stop
                        raise StopIteration
                self.epoch += 1
                self.batch_in_epoch = 0
            self.validate()
            self.save()
        except StopIteration:
            pass
        finally:
            progress.close()
            for s, h in old_handlers.items():
                signal.signal(s, h)
        log.info("training finished after %d updates (%s); %.1f min of training", self.step,
                 reason, self.elapsed / 60)
        translator = Translator.load(self.model_dir, "best", str(self.device))
        if self.cfg.data.test:
            self.test(translator)
        log.removeHandler(self._log_handler)
        self._log_handler.close()
        return translator

    def _should_stop(self) -> str:
        t = self.cfg.training
        if t.max_steps and self.step >= t.max_steps:
            return f"max_steps={t.max_steps} reached"
        if t.max_minutes and self.elapsed >= 60 * t.max_minutes:
            return f"max_minutes={t.max_minutes} reached"
        return ""

    def _log_train(self, w: dict, progress: "_Progress") -> None:
        tok = max(1, w["tok"])
        loss = w["loss"] / tok
        tok_s = w["tok"] / max(w["time"], 1e-9)
        pad = w["pad"] / max(1, w["pad"] + w["tok"])
        record = {"event": "train", "step": self.step, "epoch": self.epoch + 1, "loss": loss,
                  "ppl": math.exp(min(loss, 50)), "lr": self.optimizer.param_groups[0]["lr"],
                  "tgt_tok_s": tok_s, "pad_frac": pad, "elapsed_s": self.elapsed}
        eta = progress.eta(self.step, self.elapsed, self.cfg.training.max_minutes)
        progress.describe(f"loss {loss:.3f} | {tok_s:,.0f} tok/s")
        log.info("step %d | epoch %d | loss %.4f | ppl %.2f | lr %.2e | %s tgt tok/s | pad %.1f%%"
                 " | eta %s", self.step, self.epoch + 1, loss, record["ppl"], record["lr"],
                 f"{tok_s:,.0f}", 100 * pad, eta)
        self._metrics(record)

    def _metrics(self, record: dict) -> None:
        with open(self.model_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ---- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def dev_loss(self) -> tuple[float, int]:
        """Summed NLL (no smoothing) and token count over the dev set."""
        self.model.eval()
        src = [self.src.encode(s) for s in self.dev_src]
        tgt = [self.tgt.encode(s) for s in self.dev_ref]
        pairs = [i for i in range(len(src)) if src[i]]
        total, n = 0.0, 0
        for idx in batch_indices(np.array([len(src[i]) for i in pairs]),
                                 np.array([len(tgt[i]) for i in pairs]),
                                 batch_size=self.cfg.decoding.batch_size, shuffle=False):
            b = make_batch([src[pairs[i]] for i in idx], [tgt[pairs[i]] for i in idx])
            b = b.to(self.device)
            with self._autocast():
                logits, _ = self.model(b.src, b.src_lens, b.tgt_in)
            total += float(F.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                           b.tgt_out.view(-1), ignore_index=PAD_ID,
                                           reduction="sum"))
            n += b.n_tgt_tokens
        return total, n

    def validate(self) -> bool:
        """Score the dev set, keep best/. Returns True when early stopping says stop."""
        if not self.dev_src:
            save_checkpoint(self.model_dir / "best", self.model, self._meta({}))
            return False
        tic = time.perf_counter()
        nll, n = self.dev_loss()
        translator = Translator(self.model, self.src, self.tgt, self.cfg, self.device)
        with self._autocast():
            hyps = translator.translate(self.dev_src, beam_size=1)
        scores = evaluate(hyps, self.dev_ref, ["bleu", "chrf"])
        scores.pop("signature")
        scores.update(loss=nll / max(1, n), ppl=perplexity(nll, n))
        value = scores[self.metric]
        better = self.best_score is None or (
            value > self.best_score if HIGHER_IS_BETTER[self.metric] else value < self.best_score)
        if better:
            self.best_score, self.bad_validations = value, 0
            save_checkpoint(self.model_dir / "best", self.model, self._meta(scores))
        else:
            self.bad_validations += 1
        self.schedule.validated(value)
        log.info("validation at step %d: dev loss %.4f | ppl %.2f | BLEU %.2f | chrF %.2f%s "
                 "(%.1fs) | e.g. %r -> %r", self.step, scores["loss"], scores["ppl"],
                 scores["bleu"], scores["chrf"], " | new best" if better else "",
                 time.perf_counter() - tic, self.dev_src[0][:60], hyps[0][:60])
        self._metrics({"event": "valid", "step": self.step, "epoch": self.epoch + 1,
                       "dev_loss": scores["loss"], "dev_ppl": scores["ppl"],
                       "bleu": scores["bleu"], "chrf": scores["chrf"], "best": better})
        patience = self.cfg.training.patience
        return bool(patience and self.bad_validations >= patience)

    def test(self, translator: Translator) -> dict:
        d = self.cfg.data
        src, ref = read_parallel(*resolve_pair(d.test, d.src_lang, d.tgt_lang))
        hyps = translator.translate(src)
        scores = evaluate(hyps, ref, ["bleu", "chrf"])
        log.info("test (%s, beam %d): BLEU %.2f | chrF %.2f | %s", d.test,
                 self.cfg.decoding.beam_size, scores["bleu"], scores["chrf"],
                 scores["signature"]["bleu"])
        self._metrics({"event": "test", "step": self.step, "bleu": scores["bleu"],
                       "chrf": scores["chrf"], "signature": scores["signature"]})
        return scores

    # ---- checkpoints ---------------------------------------------------------------------------
    def _meta(self, scores: dict) -> dict:
        return {"step": self.step, "epoch": self.epoch, "scores": scores,
                "n_params": self.n_params}

    def save(self) -> None:
        """Write last/ with the full trainer state (atomic)."""
        state = {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best_score": self.best_score, "bad_validations": self.bad_validations,
            "elapsed": self.elapsed, "nonfinite": self.nonfinite,
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": _rng_state(),
        }
        save_checkpoint(self.model_dir / "last", self.model,
                        self._meta({"best": self.best_score}), state)

    def _restore(self, path: Path) -> None:
        load_weights(self.model, path, self.device)
        state = load_trainer_state(path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        for key in ("step", "epoch", "batch_in_epoch", "best_score", "bad_validations",
                    "elapsed", "nonfinite"):
            setattr(self, key, state[key])
        _set_rng_state(state["rng"])


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise (the log lines carry the numbers)."""

    def __init__(self, total: int, done: int):
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.description}"),
                                transient=True)
            self.task = self.bar.add_task("", total=total, completed=done)
            self.bar.start()
        self.total = total

    def update(self, step: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=step)

    def describe(self, text: str) -> None:
        if self.bar:
            self.bar.update(self.task, description=text)

    def eta(self, step: int, elapsed: float, max_minutes: float | None) -> str:
        left = (self.total - step) * elapsed / max(step, 1)
        if max_minutes:
            left = min(left, max(0.0, 60 * max_minutes - elapsed))
        return time.strftime("%H:%M:%S", time.gmtime(left))

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None
