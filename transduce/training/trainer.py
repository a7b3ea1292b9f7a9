"""The training loop: data -> batches -> loss -> updates, with validation, checkpoints and resume.

Read top to bottom: :meth:`Trainer.__init__` prepares model_dir, data, model and optimizer (or
restores them from ``last/``); :meth:`Trainer.train` runs epochs of length-bucketed batches;
:meth:`Trainer.validate` scores the dev set and keeps ``best/``; :meth:`Trainer.save` writes
``last/`` with everything needed to continue exactly where training stopped. The losses are in
``loss.py``, the saved position in ``state.py``, logs and signals in ``progress.py``.
"""
from __future__ import annotations

import logging
import math
import random
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from transduce import checkpoint as ck, model_dir as md
from transduce.checkpoints import HIGHER_IS_BETTER, average_at_end, keep
from transduce.config import EPOCHS, Config, save_config
from transduce.data.batching import Batch, attention_cost, batch_indices, warn_oversized
from transduce.data.corpus import read_dev
from transduce.data.images import resolve_image_size
from transduce.data.profile import resolve_auto
from transduce.data.training_set import TrainingSet
from transduce.decode.translator import Translator
from transduce.errors import TransduceError
from transduce.model.seq2seq import build_model
from transduce.training import distributed
from transduce.training.loss import training_loss
from transduce.training.precision import autocast, check_precision
from transduce.training.optim import Schedule, build_optimizer
from transduce.training.progress import (Progress, RunLog, TrainingInterrupted, Window,
                                         stop_signals)
from transduce.training.start import check_parent, codecs, inherit, start
from transduce.training.state import DATA_ON_RESUME, check_same_run, rng_state
from transduce.training.tensorboard import Board
from transduce.training.validation import (DevSet, stretch_interval, test_scores,
                                           validation_due)

log = logging.getLogger("transduce")


class Trainer:
    on_validation = None  # called with (step, dev scores) after each validation (transduce tune)

    def __init__(self, config: Config, overwrite: bool = False):
        """Check everything that can be checked before model_dir is touched (the data files, the
        model_dir path and contents, a resumable last/), then build or restore the training state.

        A user error raises :class:`TransduceError` and leaves model_dir as it was: with
        ``--overwrite`` the new run is built aside (``md.prepare``) and replaces the old one only
        once it has started."""
        self.cfg = config
        self.model_dir = Path(config.model_dir)
        md.check_model_dir(self.model_dir)

        # ---- data (read and checked, or known from the cache, before model_dir is touched) ----
        train = TrainingSet.read(config.data)
        dev = read_dev(config.data)
        config, size_note = resolve_image_size(config, train.text.src, train.text.parts[0].src_path)
        config = inherit(config)  # with init_from, the parent's copy and coverage
        config, auto_note = resolve_auto(config, train.text.src, train.text.tgt, train.profile)
        self.cfg, self.notes = config, [note for note in (size_note, auto_note) if note]

        # ---- model_dir (under torchrun: rank 0 alone, the other ranks wait for it) ------------
        self.world = distributed.init(md.pick_device(config.training.device))
        if not self.world.main:
            log.setLevel(logging.ERROR)  # rank 0 reports for all
            distributed.barrier()  # until rank 0 has prepared model_dir and last/ (_join_ranks)
        main = self.world.main
        self.resume_from = None if overwrite and main else md.resumable(self.model_dir)
        if self.resume_from:
            check_same_run(self.model_dir, config.to_dict(), self.resume_from)
        elif config.training.init_from:
            check_parent(config)  # the same network and vocabularies as the parent's
        self.out = md.prepare(self.model_dir, overwrite) if main else self.model_dir
        self.run_log = RunLog(self.model_dir, main, self.out)
        self.board: Board | None = None
        try:
            self._setup(train, dev)
            if self.out != self.model_dir:  # --overwrite: the new run has started
                md.replace_run(self.model_dir, self.out)
            self._join_ranks()
        except BaseException:
            self._close_log()
            if self.out != self.model_dir:
                shutil.rmtree(self.out, ignore_errors=True)
            raise

    def _setup(self, train: TrainingSet, dev: tuple[list[str], list[str]] | None) -> None:
        config, t = self.cfg, self.cfg.training
        for note in self.notes:
            log.info(note)  # here, so that train.log holds it too
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = distributed.rank_device(md.pick_device(t.device), self.world)
        check_precision(t.precision, self.device)
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)

        # ---- vocabularies and training pairs -------------------------------------------------
        self.src, self.tgt = codecs(config, self.model_dir, self.out, bool(self.resume_from),
                                    train)  # built (or from the cache), resumed or the parent's
        self.data = train.pairs(config.data, self.src, self.tgt, config.model.copy)
        if self.resume_from:
            check_same_run(self.model_dir, config.to_dict(), self.resume_from, DATA_ON_RESUME)

        # ---- model and optimizer ------------------------------------------------------------
        m = config.model
        self.model = build_model(m, len(self.src.vocab), len(self.tgt.vocab))
        self.model.to(self.device)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        feeding = "" if m.arch == "transformer" else \
            f", input feeding {'on' if m.input_feeding else 'off'}"
        log.info("model: %s, %s attention%s, %s parameters", *m.describe(), feeding,
                 f"{self.n_params:,}")
        self.att_cost = attention_cost(m.attention, m.decoder_hidden_size, m.embedding_size,
                                       len(self.tgt.vocab))
        self.dev = DevSet.build(dev, self.src, self.tgt, config, self.att_cost)
        self.optimizer = build_optimizer(t, self.model.parameters())
        self.batches_per_epoch = len(self._epoch_batches(0))
        if not self.batches_per_epoch:
            raise TransduceError(f"the training data makes fewer batches than the "
                                 f"{self.world.size} processes; use smaller batches "
                                 "(training.batch_size / batch_tokens) or fewer processes")
        # updates in the run; with only a time budget, EPOCHS of them (the schedules' horizon)
        self.total_steps = t.max_steps or math.ceil(
            min(t.epoch_limit, EPOCHS) * self.batches_per_epoch / (t.accumulate * self.world.size))
        self.metric = t.early_stopping_metric
        self.higher = HIGHER_IS_BETTER[self.metric]
        self.schedule = Schedule(t, self.optimizer, self.total_steps, self.higher)
        self.scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")

        # ---- training position (resume: as if never stopped; init_from: the parent's weights) --
        self.state = start(config, self.resume_from, self.model, self.device, self.components(),
                           self.world)
        if t.tensorboard and self.world.main:
            self.board = Board(self.model_dir / md.TENSORBOARD,
                               self.state.step if self.resume_from else None)
        # written once the run is known to be sound, so a failed start leaves the old one
        if self.world.main:
            save_config(config, self.out / md.CONFIG)

    def _join_ranks(self) -> None:
        """Under torchrun, make the ranks one run. On a fresh run rank 0 writes the initial
        ``last/`` first; the other ranks (waiting in ``__init__`` until now) resume from it, so
        all share rank 0's vocabularies and start. ``self.net`` is the model wrapped in
        DistributedDataParallel, which averages the gradients; ``self.model`` stays the plain
        module (checkpoints, validation)."""
        self.net: torch.nn.Module = self.model
        if self.world.size == 1:
            return
        if self.world.main:
            if not self.resume_from:
                self.save(initial=True)
            distributed.barrier()
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.net = DistributedDataParallel(self.model, device_ids=ids)

    def _close_log(self) -> None:
        if self.board is not None:
            self.board.close()
            self.board = None
        self.run_log.close()

    # ---- batches ----------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches in order; with several ranks cut to a multiple of their number
        (rank r trains on batches r, r + ranks, ...: all ranks make the same number of steps)."""
        t = self.cfg.training
        batches = batch_indices(self.data.src_lens, self.data.tgt_lens, batch_size=t.batch_size,
                                batch_tokens=t.batch_tokens, seed=self.cfg.seed, epoch=epoch,
                                att_cost=self.att_cost, weights=self.data.weights)
        return batches[:len(batches) - len(batches) % self.world.size]

    def _autocast(self):
        return autocast(self.cfg.training.precision, self.device)

    # ---- one update -------------------------------------------------------------------------
    def _loss(self, b: Batch) -> torch.Tensor:
        """The summed training loss of one batch (``loss.training_loss``); the logits die with
        this frame."""
        with self._autocast():
            out = self.net(b.src, b.src_lens, b.tgt_in, b.src_ext)  # logits (batch, tgt, vocab)
        return training_loss(out, b, self.cfg.training, self.cfg.model.coverage)

    def _update(self, batches: list[Batch]) -> tuple[float, int, int]:
        """Forward/backward over this rank's ``batches`` (gradient accumulation), one optimizer
        step. Returns the summed smoothed cross-entropy (NaN if the update was skipped), target
        tokens and target padding, each summed over all ranks.

        The gradient is that of the loss summed over all ranks' batches, divided by their target
        token count. DDP averages the ranks' gradients, so each rank scales its loss by the
        number of ranks: N ranks with one batch each update the weights as one process that
        accumulates the same N batches."""
        t, st = self.cfg.training, self.state
        n_tokens, n_pad = (int(x) for x in distributed.all_reduce(
            [sum(b.n_tgt_tokens for b in batches), sum(b.n_pad for b in batches)], self.device))
        self.model.train()
        total = torch.zeros((), device=self.device)
        for i, b in enumerate(batches):
            last = i == len(batches) - 1  # DDP all-reduces the gradients in the last backward
            with nullcontext() if last or self.world.size == 1 else self.net.no_sync():
                loss = self._loss(b)  # the logits are freed before backward
                self.scaler.scale(loss * self.world.size / n_tokens).backward()
            total += loss.detach()
        total_f = distributed.all_reduce([float(total)], self.device)[0]
        if not math.isfinite(total_f):
            self.optimizer.zero_grad(set_to_none=True)
            st.skip_nonfinite(total_f, t.max_nonfinite_updates, self.model_dir)
            return float("nan"), n_tokens, n_pad
        st.nonfinite_run = 0
        if t.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        return total_f, n_tokens, n_pad

    # ---- the loop -----------------------------------------------------------------------------
    def train(self) -> Translator:
        """Train until max_epochs / max_steps / max_minutes / early stopping; returns best.

        SIGINT/SIGTERM stop the run at the end of the current update: ``last/`` is saved and
        :class:`TrainingInterrupted` is raised (a second signal aborts at once, leaving the
        previous checkpoints). Starting the same command again continues exactly where it
        stopped; starting a finished run again does nothing but load its best model.
        """
        t, st = self.cfg.training, self.state
        started, self.saved_at = st.step, st.elapsed  # saved_at: training seconds at last/
        try:
            with stop_signals() as received:
                if self.resume_from:
                    log.info("resuming from step %d (epoch %d, batch %d)", st.step, st.epoch + 1,
                             st.batch_in_epoch)
                log.info("training: %d batches per epoch, up to %d updates, device %s, %s",
                         self.batches_per_epoch, self.total_steps, self.device, t.precision)
                if t.batch_tokens:
                    warn_oversized(self.data.src_lens, self.data.tgt_lens, t.batch_tokens,
                                   self.att_cost, "data.max_src_len / data.max_tgt_len (now "
                                   f"{self.cfg.data.max_src_len} / {self.cfg.data.max_tgt_len})")
                reason = st.stop_reason(t, resumed=True)
                if reason:
                    log.info("nothing left to train at step %d (%s)", st.step, reason)
                progress = Progress(self.total_steps, st.step, self.world.main,
                                    bool(t.max_steps) or math.isfinite(t.epoch_limit))
                self.window = Window()  # sums since the last log line, across epochs
                try:
                    while not reason and st.epoch < t.epoch_limit:
                        reason = self._train_epoch(progress, received)
                        if not reason:
                            st.epoch += 1
                            st.batch_in_epoch = 0
                finally:
                    progress.close()
                if not reason:
                    reason = "max_epochs reached"
                    if st.validated_at != st.step:
                        self.validate()
                        self.save()
                if t.average_at_end and self.dev is not None and self.world.main and \
                        st.step > started:
                    event = average_at_end(self.model_dir, self.model, t.average_at_end,
                                           lambda m: self.dev.score(m, self.device,
                                                                    self._autocast)[0],
                                           self.metric, st.best_score, self._meta({}))
                    if event:
                        self.run_log.record({"step": st.step, **event})
            log.info("training finished after %d updates (%s); %.1f min of training", st.step,
                     reason, st.elapsed / 60)
            try:
                translator = Translator.load(self.model_dir, md.BEST, str(self.device))
                if self.cfg.data.test and self.world.main:
                    scores = test_scores(translator, self.cfg)
                    # BLEU, chrF (CIDEr too for captions) and sacrebleu's signature
                    self.run_log.record({"event": "test", "step": st.step, **scores})
                return translator
            finally:
                if self.world.size > 1:
                    distributed.shutdown()
        finally:
            self._close_log()

    def _train_epoch(self, progress: Progress, received: list[int]) -> str:
        """The rest of the current epoch; returns why training stops, or "" at the epoch's end."""
        t, st = self.cfg.training, self.state
        batches = self._epoch_batches(st.epoch)
        per_step = t.accumulate * self.world.size
        while st.batch_in_epoch < len(batches):
            group = batches[st.batch_in_epoch:st.batch_in_epoch + per_step]
            tic = time.perf_counter()
            data = [self.data.batch(idx).to(self.device)
                    for idx in group[self.world.rank::self.world.size]]
            loss, n_tok, n_pad = self._update(data)
            st.batch_in_epoch += len(group)
            st.step += 1
            dt = time.perf_counter() - tic
            st.elapsed += dt
            # the ranks take the same decisions: the largest signal number any rank received
            # (0: none), the longest training time (for max_minutes)
            signum, st.elapsed = distributed.all_reduce([received[0] if received else 0,
                                                         st.elapsed], self.device, "max")
            self.window.add(loss, n_tok, n_pad, dt)
            if st.step % t.log_every == 0:
                self._log_train(self.window, progress)
                self.window = Window()
            progress.update(st.step)
            stop = st.stop_reason(t)
            due = validation_due(t, st, self.total_steps) or bool(stop)
            if due and self.validate():
                stop = stop or f"early stopping: no improvement in {t.patience} validations"
            # last/ at each validation and every save_every minutes (elapsed: the ranks' maximum)
            saved = due or bool(t.save_every and st.elapsed - self.saved_at >= 60 * t.save_every)
            if saved:
                self.save()
            if stop:
                return stop
            if signum:
                if not saved:
                    self.save()
                raise TrainingInterrupted(int(signum), st.step, self.model_dir)
        return ""

    def _log_train(self, window: Window, progress: Progress) -> None:
        st = self.state
        record = window.event(step=st.step, epoch=st.epoch + 1,
                              lr=self.optimizer.param_groups[0]["lr"], elapsed_s=st.elapsed,
                              skipped_nonfinite=st.nonfinite)
        progress.report(record, st.elapsed, self.cfg.training.max_minutes)
        if self.board:
            self.board.scalars("train", record, ("loss", "ppl", "lr", "tgt_tok_s"), st.step)
        self.run_log.record(record)

    # ---- validation ---------------------------------------------------------------------------
    def validate(self) -> bool:
        """Rank 0 scores the dev set and keeps best/; every rank learns the outcome (early
        stopping, plateau schedule). Returns True when early stopping says stop."""
        st = self.state
        st.validated_at = st.step
        stop = self._validate() if self.world.main else False
        if self.world.size > 1:
            stop, st.best_score, st.bad_validations, schedule = distributed.broadcast(
                (stop, st.best_score, st.bad_validations, self.schedule.state_dict()))
            self.schedule.load_state_dict(schedule)
        return stop

    def _validate(self) -> bool:
        """:meth:`validate`'s work, on rank 0: dev scores, best/, the log."""
        st = self.state
        if self.dev is None:
            ck.save_checkpoint(self.model_dir / md.BEST, self.model, self._meta({}))
            return False
        tic = time.perf_counter()
        scores, translator, hyps = self.dev.score(self.model, self.device, self._autocast)
        better = st.validated(scores[self.metric], self.higher)
        if better:
            ck.save_checkpoint(self.model_dir / md.BEST, self.model, self._meta(scores))
        keep(self.model_dir, self.model, self._meta(scores), self.cfg.training)
        self.schedule.validated(scores[self.metric])
        took = time.perf_counter() - tic
        self.run_log.validation(st.step, st.epoch + 1, scores, better, took,
                                (self.dev.src[self.dev.sample[0]], hyps[0]))
        stretch_interval(self.cfg.training, st, took)
        if self.board:
            self.board.scalars("dev", scores, ("loss", "ppl", "bleu", "chrf"), st.step)
            if self.cfg.model.attention != "none":
                self.board.attention(translator, self.dev.src[:Board.SENTENCES], st.step)
        if self.on_validation:
            self.on_validation(st.step, scores)
        patience = self.cfg.training.patience
        return bool(patience and st.bad_validations >= patience)

    # ---- checkpoints ---------------------------------------------------------------------------
    def _meta(self, scores: dict) -> dict:
        return {"step": self.state.step, "epoch": self.state.epoch, "scores": scores,
                "n_params": self.n_params}

    def save(self, initial: bool = False) -> None:
        """Write last/ with the full trainer state (atomic). Every rank calls it: rank 0 collects
        the ranks' RNG states and writes. ``initial``: rank 0 alone writes the first last/ of a
        multi-process run, with its own RNG states only (the other ranks then seed their own)."""
        self.saved_at = self.state.elapsed
        rngs = [rng_state()] if initial else distributed.gather_state(rng_state())
        if self.world.main:
            ck.save_checkpoint(self.model_dir / md.LAST, self.model,
                               self._meta({"best": self.state.best_score}),
                               self.state.to_file(self.components(), rngs, self.world.size))

    def components(self) -> dict:
        """The objects whose state dicts ``last/`` keeps beside the weights."""
        return {"optimizer": self.optimizer, "schedule": self.schedule, "scaler": self.scaler}
