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
import yaml
from torch.nn.parallel import DistributedDataParallel

from transduce.config import Config, save_config
from transduce.data.batching import (Batch, attention_cost, batch_cost, batch_indices,
                                     make_batch)
from transduce.data.codec import Codec, build_codecs, has_codecs, load_codecs
from transduce.data.corpus import filter_pairs, read_parallel, resolve_pair
from transduce.data.vocabulary import PAD_ID
from transduce.decode.translator import Translator, pick_device
from transduce.errors import TransduceError
from transduce.evaluate import evaluate, perplexity
from transduce.model.pointer import copy_nll, coverage_loss, source_ext_ids, target_ext_ids
from transduce.model.seq2seq import Output, build_model
from transduce.train import distributed
from transduce.train.checkpoint import (STATE, find_checkpoint, load_trainer_state,
                                        load_weights, save_checkpoint)
from transduce.train.optim import Schedule, build_optimizer
from transduce.train.tensorboard import Board

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


class _SmoothedNLL(torch.autograd.Function):
    """Summed label-smoothed cross-entropy, as ``F.cross_entropy(..., label_smoothing=eps,
    ignore_index=PAD_ID, reduction="sum")``, in a fraction of the memory.

    The output layer's (tokens x vocabulary) tensors dominate training memory at large
    vocabularies: autograd's cross-entropy needs about three of them at once (measured: 3.0x the
    logits' size at its peak), this one about one (1.0x). The forward pass turns the logits into
    log-probabilities in place (row chunks bound the temporary), and the backward pass turns
    those into the gradient in place: ``softmax - (1 - eps) * onehot(target) - eps / vocab``,
    zero at padding. The logits' memory is reused: no autograd node may have saved them (if one
    did, backward raises instead of computing a wrong gradient).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
        logp = logits.detach()  # (tokens, vocab): the same memory
        lse = torch.cat([torch.logsumexp(rows, dim=-1) for rows in logp.split(2048)])
        logp.sub_(lse.unsqueeze(1))
        keep = target != PAD_ID  # (tokens,)
        nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1)
        loss = (1.0 - eps) * nll - eps * logp.mean(dim=-1) if eps else nll
        ctx.save_for_backward(logp, target, keep)
        ctx.eps = eps
        return loss.masked_fill(~keep, 0.0).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        logp, target, keep = ctx.saved_tensors
        eps = ctx.eps
        grad = logp.exp_()  # the softmax, in the saved tensor's memory (used only once)
        if eps:
            grad.sub_(eps / grad.size(-1))
        grad.scatter_add_(1, target.unsqueeze(1),
                          torch.full_like(grad[:, :1], -(1.0 - eps)))
        grad.mul_((keep.to(grad.dtype) * grad_out).unsqueeze(1))
        return grad, None, None


def smoothed_nll(logits: torch.Tensor, target: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """logits: (tokens, vocab) float, overwritten with log-probabilities; target: (tokens,) ids,
    PAD_ID ignored -> the summed loss."""
    return _SmoothedNLL.apply(logits, target, float(eps))


def nll(out: Output, b: Batch, eps: float = 0.0) -> torch.Tensor:
    """Summed (label-smoothed) NLL of ``b``'s targets: under the copy model's mixed distribution,
    or the softmax of the logits (whose memory the loss reuses)."""
    if out.p_gen is not None:
        return copy_nll(out.logits, out.attention, out.p_gen, b.src_ext, b.tgt_out, eps)
    return smoothed_nll(out.logits.float().view(-1, out.logits.size(-1)), b.tgt_out.view(-1), eps)


def _set_rng_state(state: dict) -> None:
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Settings a resumed run must share with the run that wrote last/: they fix the network's shape,
# what its vocabulary means, and what the optimizer state is for. The rest may change on resume.
SAME_ON_RESUME = ("model", "data.tokenizer", "data.src_tokenizer", "data.tgt_tokenizer",
                  "data.lowercase", "data.vocab_size", "data.spm_model_type", "data.min_freq",
                  "data.max_vocab_size", "data.shared_vocab", "training.optimizer")


def _lookup(config: dict, key: str):
    for part in key.split("."):
        config = config.get(part, {}) if isinstance(config, dict) else {}
    return config


class Trainer:
    def __init__(self, config: Config, overwrite: bool = False):
        """Check everything that can be checked before model_dir is touched (the data files, the
        model_dir path, a resumable last/), then build or restore the training state.

        A user error raises :class:`TransduceError` and leaves model_dir as it was (``--overwrite``
        clears it only once the data has been read)."""
        self.cfg = config
        t = config.training
        self.model_dir = Path(config.model_dir)
        if self.model_dir.exists() and not self.model_dir.is_dir():
            raise TransduceError(f"{self.model_dir}: model_dir exists and is not a directory; "
                                 "choose another model_dir")

        # ---- data (read before model_dir is touched) --------------------------------------
        d = config.data
        if not d.train:
            raise TransduceError("config key 'data.train' is not set; give the training file "
                                 "prefix (data/train for data/train.<src_lang>, .<tgt_lang>)")
        src_path, tgt_path = resolve_pair(d.train, d.src_lang, d.tgt_lang)
        train_src, train_tgt = read_parallel(src_path, tgt_path, key="data.train")
        self.dev_src: list[str] = []
        self.dev_ref: list[str] = []
        self._dev_loss_batches: list[Batch] | None = None
        if d.dev:
            self.dev_src, self.dev_ref = read_parallel(*resolve_pair(d.dev, d.src_lang,
                                                                     d.tgt_lang), key="data.dev")
        if d.test:  # read again at the end; checked now so a typo does not wait for hours
            read_parallel(*resolve_pair(d.test, d.src_lang, d.tgt_lang), key="data.test")

        # ---- model_dir (under torchrun: rank 0 alone, the other ranks wait for it) ------------
        self.world = distributed.init(pick_device(t.device))
        self._log_handler: logging.Handler | None = None
        if not self.world.main:
            log.setLevel(logging.ERROR)  # rank 0 reports for all
            distributed.barrier()  # until rank 0 has prepared model_dir and last/ (_join_ranks)
        elif overwrite:
            for name in MODEL_DIR_ENTRIES:
                p = self.model_dir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        self.resume_from = self._resumable()
        if self.world.main:
            try:
                self.model_dir.mkdir(parents=True, exist_ok=True)
                probe = self.model_dir / ".write-test"
                probe.write_text("")
                probe.unlink()
            except OSError as e:
                raise TransduceError(f"{self.model_dir}: model_dir is not writable "
                                     f"({e.strerror}); choose another model_dir or fix its "
                                     "permissions") from None
            self._log_handler = _setup_logging(self.model_dir)
        try:
            self._setup(train_src, train_tgt, src_path)
            self._join_ranks()
        except BaseException:
            self._close_log()
            raise

    def _resumable(self) -> Path | None:
        """``last/`` (or ``last.old``) to resume from; refuses to start over on a trained model."""
        last = find_checkpoint(self.model_dir / "last")
        if last is not None:
            if not (last / STATE).is_file():
                raise TransduceError(f"{last}: checkpoint has no {STATE}, so training cannot "
                                     "resume from it; use --overwrite to start afresh (this "
                                     "deletes the checkpoints) or choose another model_dir")
            self._check_same_run(last)
            return last
        best = find_checkpoint(self.model_dir / "best")
        if best is not None:
            raise TransduceError(f"{best}: model_dir already holds a trained model but no last/ "
                                 "to resume from; use --overwrite to start afresh (this deletes "
                                 "it) or choose another model_dir")
        return None

    def _check_same_run(self, last: Path) -> None:
        """Resuming with another model or vocabulary would fail later or train nonsense: say so."""
        try:
            old = yaml.safe_load((self.model_dir / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return  # nothing to compare with; loading the weights still checks the shapes
        new = self.cfg.to_dict()
        for key in SAME_ON_RESUME:
            a, b = _lookup(old, key), _lookup(new, key)
            if isinstance(a, dict) and isinstance(b, dict):
                diff = sorted(k for k in set(a) & set(b) if a[k] != b[k])  # keys both know
                if not diff:
                    continue
                key, a, b = f"{key}.{diff[0]}", a.get(diff[0]), b.get(diff[0])
            elif a == b or a == {}:
                continue
            raise TransduceError(
                f"config key '{key}' is {b!r} but the run in {self.model_dir} used {a!r}; to "
                f"resume from {last} set it back, or use --overwrite to start afresh (or "
                "another model_dir)")

    def _setup(self, train_src: list[str], train_tgt: list[str], src_path: Path) -> None:
        config, t, d = self.cfg, self.cfg.training, self.cfg.data
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = distributed.rank_device(pick_device(t.device), self.world)
        if t.precision == "fp16" and self.device.type != "cuda":
            raise TransduceError("training.precision=fp16 needs a CUDA device; use bf16 on CPU")
        if (t.precision == "bf16" and self.device.type == "cpu"
                and not torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            log.warning("training.precision=bf16 on a CPU without bf16 instructions (%s): "
                        "matrix products run about 20x slower than in fp32 "
                        "(docs/performance.md); use fp32",
                        torch.backends.cpu.get_cpu_capability())
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)

        # ---- vocabularies and training pairs -------------------------------------------------
        if self.resume_from and has_codecs(self.model_dir):
            self.src, self.tgt = load_codecs(d, self.model_dir)
        else:
            self.src, self.tgt = build_codecs(d, self.model_dir, train_src, train_tgt)
        src_tok = [self.src.tokenize(s) for s in train_src]
        tgt_tok = [self.tgt.tokenize(s) for s in train_tgt]
        keep, _ = filter_pairs(src_tok, tgt_tok, d.max_src_len, d.max_tgt_len, src_path,
                               d.skip_bad_pairs)
        self.train_src = [np.array(self.src.vocab.encode(src_tok[i]), dtype=np.int64)
                          for i in keep]
        self.train_ext: list[np.ndarray] | None = None  # copy: the source as target-side ids
        if config.model.copy:
            ext = [self._copy_ids(src_tok[i], tgt_tok[i]) for i in keep]
            self.train_ext = [np.array(s, dtype=np.int64) for s, _ in ext]
            self.train_tgt = [np.array(t, dtype=np.int64) for _, t in ext]
        else:
            self.train_tgt = [np.array(self.tgt.vocab.encode(tgt_tok[i]), dtype=np.int64)
                              for i in keep]
        self.src_lens = np.array([len(s) for s in self.train_src])
        self.tgt_lens = np.array([len(s) for s in self.train_tgt])
        log.info("training data: %d pairs from %s (mean %.1f source / %.1f target tokens)",
                 len(keep), src_path, self.src_lens.mean(), self.tgt_lens.mean())

        # ---- model and optimizer ------------------------------------------------------------
        self.model = build_model(config.model, len(self.src.vocab), len(self.tgt.vocab))
        self.model.to(self.device)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %s encoder (%s), %s attention, input feeding %s, %s parameters",
                 config.model.cell, "bidirectional" if config.model.bidirectional else
                 "unidirectional", config.model.attention,
                 "on" if config.model.input_feeding else "off", f"{n_params:,}")
        self.n_params = n_params
        m = config.model
        self.att_cost = attention_cost(m.attention, m.decoder_hidden_size, m.embedding_size,
                                       len(self.tgt.vocab))
        self.optimizer = build_optimizer(t, self.model.parameters())
        self.batches_per_epoch = len(self._epoch_batches(0))
        if not self.batches_per_epoch:
            raise TransduceError(f"the training data makes fewer batches than the "
                                 f"{self.world.size} processes; use smaller batches "
                                 "(training.batch_size / batch_tokens) or fewer processes")
        total = t.max_steps or math.ceil(t.max_epochs * self.batches_per_epoch /
                                         (t.accumulate * self.world.size))
        self.total_steps = total
        self.metric = t.early_stopping_metric
        self.schedule = Schedule(t, self.optimizer, total, HIGHER_IS_BETTER[self.metric])
        self.scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")

        # ---- training position (restored on resume) -----------------------------------------
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_score: float | None = None
        self.bad_validations = 0
        self.validated_at = -1  # step of the last validation
        self.elapsed = 0.0  # training seconds so far, validation excluded
        self.nonfinite = 0  # updates skipped because the loss was NaN/inf
        self.nonfinite_run = 0  # ... of which in a row, up to now
        if self.resume_from:
            self._restore(self.resume_from)
        self.board = Board(self.model_dir / "tensorboard", self.step if self.resume_from else None
                           ) if t.tensorboard and self.world.main else None
        # written once the run is known to be sound, so a failed start leaves the old one
        if self.world.main:
            save_config(config, self.model_dir / "config.yaml")

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
                self._write_last([_rng_state()])
            distributed.barrier()
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.net = DistributedDataParallel(self.model, device_ids=ids)

    def _close_log(self) -> None:
        if getattr(self, "board", None) is not None:
            self.board.close()
            self.board = None
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    # ---- batches ----------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches in order; with several ranks cut to a multiple of their number
        (rank r trains on batches r, r + ranks, ...: all ranks make the same number of steps)."""
        t = self.cfg.training
        batches = batch_indices(self.src_lens, self.tgt_lens, batch_size=t.batch_size,
                                batch_tokens=t.batch_tokens, seed=self.cfg.seed, epoch=epoch,
                                att_cost=self.att_cost)
        return batches[:len(batches) - len(batches) % self.world.size]

    def _warn_oversized(self) -> None:
        """Pairs that exceed the token budget alone are trained one per batch: say so, once."""
        t, d = self.cfg.training, self.cfg.data
        if not t.batch_tokens:
            return
        cost = np.maximum(np.maximum(self.src_lens, self.tgt_lens + 1),
                          self.att_cost * self.src_lens * (self.tgt_lens + 1))
        over = int((cost > t.batch_tokens).sum())
        if over:
            log.warning("%d training pairs exceed training.batch_tokens=%d on their own (the "
                        "largest costs %d tokens, attention included); each gets a batch of its "
                        "own. Lower data.max_src_len / data.max_tgt_len (now %d / %d) to keep "
                        "memory within the budget", over, t.batch_tokens, int(cost.max()),
                        d.max_src_len, d.max_tgt_len)

    def _copy_ids(self, src: list[str], tgt: list[str]) -> tuple[list[int], list[int]]:
        """Copy models: (source, target) tokens -> extended ids (see model/pointer.py)."""
        src_ext, oovs = source_ext_ids(src, self.tgt.vocab)
        return src_ext, target_ext_ids(tgt, self.tgt.vocab, oovs)

    def _batch(self, idx: np.ndarray) -> Batch:
        ext = [self.train_ext[i] for i in idx] if self.train_ext is not None else None
        return make_batch([self.train_src[i] for i in idx],
                          [self.train_tgt[i] for i in idx], ext).to(self.device)

    def _autocast(self):
        p = self.cfg.training.precision
        if p == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if p == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ---- one update -------------------------------------------------------------------------
    def _loss(self, b: Batch, label_smoothing: float) -> torch.Tensor:
        """Summed (smoothed) cross-entropy of one batch, plus the weighted coverage loss with
        model.coverage; the logits die with this frame."""
        with self._autocast():
            out = self.net(b.src, b.src_lens, b.tgt_in, b.src_ext)  # logits (batch, tgt, vocab)
        loss = nll(out, b, label_smoothing)
        if self.cfg.model.coverage:
            loss = loss + self.cfg.training.coverage_weight * coverage_loss(out.attention,
                                                                            b.tgt_out)
        return loss

    def _update(self, batches: list[Batch]) -> tuple[float, int, int]:
        """Forward/backward over this rank's ``batches`` (gradient accumulation), one optimizer
        step. Returns the summed smoothed cross-entropy (NaN if the update was skipped), target
        tokens and target padding, each summed over all ranks.

        The gradient is that of the loss summed over all ranks' batches, divided by their target
        token count. DDP averages the ranks' gradients, so each rank scales its loss by the
        number of ranks: N ranks with one batch each update the weights as one process that
        accumulates the same N batches."""
        t = self.cfg.training
        n_tokens, n_pad = (int(x) for x in distributed.all_reduce(
            [sum(b.n_tgt_tokens for b in batches), sum(b.n_pad for b in batches)], self.device))
        self.model.train()
        total = torch.zeros((), device=self.device)
        for i, b in enumerate(batches):
            last = i == len(batches) - 1  # DDP all-reduces the gradients in the last backward
            with nullcontext() if last or self.world.size == 1 else self.net.no_sync():
                loss = self._loss(b, t.label_smoothing)  # the logits are freed before backward
                self.scaler.scale(loss * self.world.size / n_tokens).backward()
            total += loss.detach()
        total_f = distributed.all_reduce([float(total)], self.device)[0]
        if not math.isfinite(total_f):
            self.optimizer.zero_grad(set_to_none=True)
            self.nonfinite += 1
            self.nonfinite_run += 1
            log.warning("step %d: loss is %s; update skipped (%d in a row, %d in all)",
                        self.step + 1, total_f, self.nonfinite_run, self.nonfinite)
            if self.nonfinite_run >= t.max_nonfinite_updates:
                raise TransduceError(
                    f"{self.nonfinite_run} updates in a row had a NaN/inf loss (step "
                    f"{self.step + 1}); training stopped, the checkpoints in {self.model_dir} are "
                    "intact. Lower training.lr, set training.clip_grad_norm or use "
                    "training.precision: fp32, then run the same command to resume")
            return float("nan"), n_tokens, n_pad
        self.nonfinite_run = 0
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

        SIGINT/SIGTERM set a flag; at the end of the current update ``last/`` is saved and
        :class:`TrainingInterrupted` is raised (a second signal aborts at once, leaving the
        previous checkpoints). Starting the same command again continues exactly where it
        stopped; starting a finished run again does nothing but load its best model.
        """
        t = self.cfg.training
        stop_signal: list[int] = []

        def on_signal(signum, _frame):
            if stop_signal:  # the second one: abort now (checkpoints are written atomically)
                raise KeyboardInterrupt
            stop_signal.append(signum)
            log.warning("%s received: saving last/ after this update (again to abort at once)",
                        signal.Signals(signum).name)

        old_handlers = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[s] = signal.signal(s, on_signal)
            except ValueError:  # not the main thread
                pass
        try:
            if self.resume_from:
                log.info("resuming from step %d (epoch %d, batch %d)", self.step, self.epoch + 1,
                         self.batch_in_epoch)
            log.info("training: %d batches per epoch, up to %d updates, device %s, %s",
                     self.batches_per_epoch, self.total_steps, self.device, t.precision)
            self._warn_oversized()
            reason = self._finished()
            if reason:
                log.info("nothing left to train at step %d (%s)", self.step, reason)
            progress = _Progress(self.total_steps, self.step, self.world.main)
            self._window = _Window()
            try:
                while not reason and self.epoch < t.max_epochs:
                    reason = self._train_epoch(progress, stop_signal)
                    if not reason:
                        self.epoch += 1
                        self.batch_in_epoch = 0
            finally:
                progress.close()
            if not reason:
                reason = "max_epochs reached"
                if self.validated_at != self.step:
                    self.validate()
                    self.save()
        except BaseException:
            self._close_log()
            raise
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
        try:
            log.info("training finished after %d updates (%s); %.1f min of training", self.step,
                     reason, self.elapsed / 60)
            translator = Translator.load(self.model_dir, "best", str(self.device))
            if self.cfg.data.test and self.world.main:
                self.test(translator)
            return translator
        finally:
            self._close_log()
            if self.world.size > 1:
                distributed.shutdown()

    def _train_epoch(self, progress: "_Progress", stop_signal: list[int]) -> str:
        """The rest of the current epoch; returns why training stops, or "" at the epoch's end."""
        t = self.cfg.training
        batches = self._epoch_batches(self.epoch)
        per_step = t.accumulate * self.world.size
        while self.batch_in_epoch < len(batches):
            group = batches[self.batch_in_epoch:self.batch_in_epoch + per_step]
            tic = time.perf_counter()
            data = [self._batch(idx) for idx in group[self.world.rank::self.world.size]]
            loss, n_tok, n_pad = self._update(data)
            self.batch_in_epoch += len(group)
            self.step += 1
            dt = time.perf_counter() - tic
            self.elapsed += dt
            signum = self._agree(stop_signal[0] if stop_signal else 0)
            self._window.add(loss, n_tok, n_pad, dt)
            if self.step % t.log_every == 0:
                self._log_train(self._window, progress)
                self._window = _Window()
            progress.update(self.step)
            stop = self._should_stop()
            saved = False
            if self.step % t.validate_every == 0 or stop:
                if self.validate():
                    stop = stop or f"early stopping: no improvement in {t.patience} validations"
                self.save()
                saved = True
            if stop:
                return stop
            if signum:
                if not saved:
                    self.save()
                raise TrainingInterrupted(signum, self.step, self.model_dir)
        return ""

    def _agree(self, signum: int) -> int:
        """Make the ranks take the same decisions after an update: each learns the largest
        signal number any rank has received (0: none) and takes the longest training time (for
        max_minutes)."""
        if self.world.size == 1:
            return signum
        signum, self.elapsed = distributed.all_reduce([signum, self.elapsed], self.device, "max")
        return int(signum)

    def _finished(self) -> str:
        """Why a (resumed) run has nothing left to do, or ""."""
        patience = self.cfg.training.patience
        if patience and self.bad_validations >= patience:
            return f"early stopping: no improvement in {patience} validations"
        return self._should_stop()

    def _should_stop(self) -> str:
        t = self.cfg.training
        if t.max_steps and self.step >= t.max_steps:
            return f"max_steps={t.max_steps} reached"
        if t.max_minutes and self.elapsed >= 60 * t.max_minutes:
            return f"max_minutes={t.max_minutes} reached"
        return ""

    def _log_train(self, w: "_Window", progress: "_Progress") -> None:
        loss = w.loss / max(1, w.tok)
        tok_s = w.tok / max(w.time, 1e-9)
        pad = w.pad / max(1, w.pad + w.tok)
        record = {"event": "train", "step": self.step, "epoch": self.epoch + 1, "loss": loss,
                  "ppl": math.exp(min(loss, 50)), "lr": self.optimizer.param_groups[0]["lr"],
                  "tgt_tok_s": tok_s, "pad_frac": pad, "elapsed_s": self.elapsed,
                  "skipped_nonfinite": self.nonfinite}
        eta = progress.eta(self.step, self.elapsed, self.cfg.training.max_minutes)
        progress.describe(f"loss {loss:.3f} | {tok_s:,.0f} tok/s")
        if self.board:
            self.board.scalars("train", {k: record[k] for k in ("loss", "ppl", "lr", "tgt_tok_s")},
                               self.step)
        log.info("step %d | epoch %d | loss %.4f | ppl %.2f | lr %.2e | %s tgt tok/s | pad %.1f%%"
                 " | eta %s", self.step, self.epoch + 1, loss, record["ppl"], record["lr"],
                 f"{tok_s:,.0f}", 100 * pad, eta)
        self._metrics(record)

    def _metrics(self, record: dict) -> None:
        if not self.world.main:
            return
        with open(self.model_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ---- validation ---------------------------------------------------------------------------
    def _dev_batches(self) -> list[Batch]:
        """The dev set's loss batches, built once: the dev set does not change between
        validations. Batches keep to the training memory budget; pairs over
        data.max_src_len/max_tgt_len are left out, as they are from training (they are still
        translated and scored)."""
        if self._dev_loss_batches is not None:
            return self._dev_loss_batches
        t, d = self.cfg.training, self.cfg.data
        src_tok = [self.src.tokenize(s) for s in self.dev_src]
        tgt_tok = [self.tgt.tokenize(s) for s in self.dev_ref]
        src = [self.src.vocab.encode(s) for s in src_tok]
        ext = None
        if self.cfg.model.copy:
            both = [self._copy_ids(s, t) for s, t in zip(src_tok, tgt_tok)]
            ext, tgt = [e for e, _ in both], [t for _, t in both]
        else:
            tgt = [self.tgt.vocab.encode(t) for t in tgt_tok]
        pairs = [i for i in range(len(src)) if src[i]
                 and len(src[i]) <= d.max_src_len and len(tgt[i]) <= d.max_tgt_len]
        if len(pairs) < len(src):
            log.info("dev loss leaves out %d of %d dev pairs (empty, or over data.max_src_len / "
                     "max_tgt_len)", len(src) - len(pairs), len(src))
        budget = t.batch_tokens or t.batch_size * batch_cost(1, d.max_src_len, d.max_tgt_len + 1,
                                                             self.att_cost)
        self._dev_loss_batches = [
            make_batch([src[pairs[i]] for i in idx], [tgt[pairs[i]] for i in idx],
                       [ext[pairs[i]] for i in idx] if ext is not None else None)
            for idx in batch_indices(np.array([len(src[i]) for i in pairs], dtype=np.int64),
                                     np.array([len(tgt[i]) for i in pairs], dtype=np.int64),
                                     batch_tokens=int(budget), att_cost=self.att_cost,
                                     max_sentences=self.cfg.decoding.batch_size, shuffle=False)]
        return self._dev_loss_batches

    @torch.no_grad()
    def dev_loss(self) -> tuple[float, int]:
        """Summed NLL (no smoothing) and token count over the dev set."""
        self.model.eval()
        total, n = 0.0, 0
        for b in self._dev_batches():
            b = b.to(self.device)
            with self._autocast():
                out = self.model(b.src, b.src_lens, b.tgt_in, b.src_ext)
            total += float(nll(out, b))
            n += b.n_tgt_tokens
        return total, n

    def validate(self) -> bool:
        """Rank 0 scores the dev set and keeps best/; every rank learns the outcome (early
        stopping, plateau schedule). Returns True when early stopping says stop."""
        self.validated_at = self.step
        stop = self._validate() if self.world.main else False
        if self.world.size > 1:
            stop, self.best_score, self.bad_validations, schedule = distributed.broadcast(
                (stop, self.best_score, self.bad_validations, self.schedule.state_dict()))
            self.schedule.load_state_dict(schedule)
        return stop

    def _validate(self) -> bool:
        """:meth:`validate`'s work, on rank 0: dev loss, greedy translation, scores, best/."""
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
        better = math.isfinite(value) and (self.best_score is None or (
            value > self.best_score if HIGHER_IS_BETTER[self.metric] else value < self.best_score))
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
        if self.board:
            self.board.scalars("dev", {k: scores[k] for k in ("loss", "ppl", "bleu", "chrf")},
                               self.step)
            if self.cfg.model.attention != "none":
                self.board.attention(translator, self.dev_src[:Board.SENTENCES], self.step)
        patience = self.cfg.training.patience
        return bool(patience and self.bad_validations >= patience)

    def test(self, translator: Translator) -> dict:
        d = self.cfg.data
        src, ref = read_parallel(*resolve_pair(d.test, d.src_lang, d.tgt_lang), key="data.test")
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
        """Write last/ with the full trainer state (atomic). Every rank calls it: rank 0 collects
        the ranks' RNG states and writes."""
        rngs = distributed.gather_state(_rng_state())
        if self.world.main:
            self._write_last(rngs)

    def _write_last(self, rngs: list[dict]) -> None:
        """``rngs``: the RNG states of ranks 0, 1, ... (only rank 0's for the initial last/ of a
        multi-process run: the other ranks then seed their own)."""
        state = {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best_score": self.best_score, "bad_validations": self.bad_validations,
            "elapsed": self.elapsed, "nonfinite": self.nonfinite,
            "nonfinite_run": self.nonfinite_run, "validated_at": self.validated_at,
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rngs[0], "rank_rng": rngs[1:],
            "world_size": self.world.size,
        }
        save_checkpoint(self.model_dir / "last", self.model,
                        self._meta({"best": self.best_score}), state)

    def _restore(self, path: Path) -> None:
        """Everything :meth:`save` wrote: weights, optimizer, schedule, scaler, position,
        early-stopping state and RNG states, so the run goes on as if never stopped."""
        load_weights(self.model, path, self.device)
        state = load_trainer_state(path)
        size = state.get("world_size", 1)
        if size != self.world.size:
            raise TransduceError(
                f"{path}: written by a run with {size} process(es), resumed with "
                f"{self.world.size}; resume with the same number (transduce train --nproc {size}"
                ", or torchrun --nproc_per_node), or use --overwrite to start afresh")
        rngs = [state["rng"], *state.get("rank_rng", [])]
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.scaler.load_state_dict(state["scaler"])
            if self.world.rank < len(rngs):
                _set_rng_state(rngs[self.world.rank])
            else:  # the initial last/ of a multi-process run: a dropout stream of its own
                torch.manual_seed(self.cfg.seed + self.world.rank)
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
            raise TransduceError(f"{path / STATE}: the saved optimizer/schedule/RNG state does "
                                 f"not fit this run ({type(e).__name__}: {str(e)[:100]}); use "
                                 "--overwrite to start afresh") from None
        for key in ("step", "epoch", "batch_in_epoch", "best_score", "bad_validations",
                    "elapsed", "nonfinite"):
            setattr(self, key, state[key])
        self.nonfinite_run = state.get("nonfinite_run", 0)
        self.validated_at = state.get("validated_at", -1)


class _Window:
    """Sums over the updates since the last log line."""

    def __init__(self) -> None:
        self.loss, self.tok, self.pad, self.time, self.updates = 0.0, 0, 0, 0.0, 0

    def add(self, loss: float, tokens: int, pad: int, seconds: float) -> None:
        if math.isfinite(loss):
            self.loss += loss
            self.tok += tokens
            self.pad += pad
        self.time += seconds
        self.updates += 1


class _Progress:
    """A rich progress bar on a terminal (rank 0's); nothing otherwise (the log lines carry the
    numbers)."""

    def __init__(self, total: int, done: int, show: bool = True):
        self.bar = None
        if show and sys.stderr.isatty():
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
