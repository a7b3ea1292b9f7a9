"""What a run reports and how it is stopped: ``train.log``, ``metrics.jsonl``, the progress bar,
the running sums behind each log line, and SIGINT/SIGTERM handling."""
from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from transduce.model_dir import METRICS, TRAIN_LOG, TRAIN_LOG_MARK

log = logging.getLogger("transduce")


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; ``last/`` was saved. ``exit_code`` is 130 or 143."""

    def __init__(self, signum: int, step: int, model_dir: Path):
        self.exit_code = 128 + signum
        super().__init__(f"interrupted at step {step}; last/ saved. Resume with the same "
                         f"command (model_dir {model_dir})")


@contextmanager
def stop_signals() -> Iterator[list[int]]:
    """While inside, SIGINT/SIGTERM append their number to the yielded list (the loop saves
    ``last/`` and stops after the current update); a second signal aborts at once with
    KeyboardInterrupt (checkpoints are written atomically). Outside the main thread, a no-op."""
    received: list[int] = []

    def on_signal(signum, _frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        log.warning("%s received: saving last/ after this update (again to abort at once)",
                    signal.Signals(signum).name)

    main = threading.current_thread() is threading.main_thread()  # only it may set handlers
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class RunLog:
    """``train.log`` (the log lines, also printed) and ``metrics.jsonl`` (one JSON object per
    event) in model_dir; only the process that reports (rank 0) writes. ``log_dir``: where
    train.log is opened if not in model_dir (``--overwrite`` builds the new run aside; the file is
    renamed into model_dir once the run has started, and the open file goes with it)."""

    def __init__(self, model_dir: Path, main: bool = True, log_dir: Path | None = None):
        self.metrics = model_dir / METRICS if main else None
        self.handler: logging.Handler | None = None
        if main:
            path = (log_dir or model_dir) / TRAIN_LOG
            new = not path.is_file() or not path.stat().st_size
            self.handler = logging.FileHandler(path, encoding="utf-8")
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            if new:  # the mark that this model_dir is a run's (model_dir.check_model_dir)
                self.handler.emit(log.makeRecord(log.name, logging.INFO, "", 0, TRAIN_LOG_MARK,
                                                 None, None))
            log.addHandler(self.handler)

    def record(self, event: dict) -> None:
        if self.metrics is not None:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    def validation(self, step: int, epoch: int, scores: dict, best: bool, seconds: float,
                   example: tuple[str, str]) -> None:
        """The log line and metrics event of a validation: dev ``scores`` ("loss", "ppl", "bleu",
        "chrf"), whether it is the best so far, its time, one (source, output) pair."""
        log.info("validation at step %d: dev loss %.4f | ppl %.2f | BLEU %.2f | chrF %.2f%s "
                 "(%.1fs) | e.g. %r -> %r", step, scores["loss"], scores["ppl"], scores["bleu"],
                 scores["chrf"], " | new best" if best else "", seconds, example[0][:60],
                 example[1][:60])
        self.record({"event": "valid", "step": step, "epoch": epoch, "dev_loss": scores["loss"],
                     "dev_ppl": scores["ppl"], "bleu": scores["bleu"], "chrf": scores["chrf"],
                     "best": best})

    def close(self) -> None:
        if self.handler is not None:
            log.removeHandler(self.handler)
            self.handler.close()
            self.handler = None


class Window:
    """Sums over the updates since the last log line."""

    def __init__(self) -> None:
        self.loss, self.tok, self.pad, self.time = 0.0, 0, 0, 0.0

    def add(self, loss: float, tokens: int, pad: int, seconds: float) -> None:
        if math.isfinite(loss):
            self.loss += loss
            self.tok += tokens
            self.pad += pad
        self.time += seconds

    def event(self, **fields) -> dict:
        """The ``train`` event of metrics.jsonl: ``fields`` plus the window's means."""
        loss = self.loss / max(1, self.tok)
        return {"event": "train", **fields, "loss": loss, "ppl": math.exp(min(loss, 50)),
                "tgt_tok_s": self.tok / max(self.time, 1e-9),
                "pad_frac": self.pad / max(1, self.pad + self.tok)}


class Progress:
    """A rich progress bar on a terminal (rank 0's); nothing otherwise (the log lines carry the
    numbers)."""

    def __init__(self, total: int, done: int, show: bool = True, ends_at_total: bool = True):
        """``total`` updates, ``done`` of them already; ``ends_at_total`` False when ``total`` is
        only the schedules' horizon of a run that a time budget ends."""
        self.bar = None
        if show and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.description}"),
                                transient=True)
            self.task = self.bar.add_task("", total=total, completed=done)
            self.bar.start()
        self.total, self.ends_at_total = total, ends_at_total

    def update(self, step: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=step)

    def report(self, record: dict, elapsed: float, max_minutes: float | None) -> None:
        """A :meth:`Window.event` as the log line and the bar's description; the time left is
        that of the updates so far per update, or what max_minutes leaves if that is less (only
        that when the updates are a horizon, not an end)."""
        left = max(0, self.total - record["step"]) * elapsed / max(record["step"], 1)
        if max_minutes:
            budget = max(0.0, 60 * max_minutes - elapsed)
            left = min(left, budget) if self.ends_at_total else budget
        eta = time.strftime("%H:%M:%S", time.gmtime(left))
        if self.bar:
            self.bar.update(self.task, description=f"loss {record['loss']:.3f} | "
                            f"{record['tgt_tok_s']:,.0f} tok/s")
        log.info("step %d | epoch %d | loss %.4f | ppl %.2f | lr %.2e | %s tgt tok/s | pad %.1f%%"
                 " | eta %s", record["step"], record["epoch"], record["loss"], record["ppl"],
                 record["lr"], f"{record['tgt_tok_s']:,.0f}", 100 * record["pad_frac"], eta)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None
