"""TensorBoard event files (``training.tensorboard: true``): scalars and attention heatmaps.

Written by rank 0 to ``model_dir/tensorboard/``; view with ``tensorboard --logdir model_dir``.
"""
from __future__ import annotations

from pathlib import Path

from transduce.errors import TransduceError


class Board:
    """A :class:`torch.utils.tensorboard.SummaryWriter` with the trainer's two kinds of entry."""

    SENTENCES = 3  # dev sentences whose attention is drawn at each validation

    def __init__(self, log_dir: Path, resume_step: int | None = None):
        """``resume_step``: a resumed run's step; events a stopped run wrote after it (which
        the resumed run repeats) are dropped. Nothing is written before the first entry (the
        run may still fail to start, or be built aside for ``--overwrite``)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TransduceError("training.tensorboard is true but the tensorboard package is "
                                 "not installed; pip install 'transduce[tensorboard]' or set "
                                 "training.tensorboard: false") from None
        self._open = lambda: SummaryWriter(str(log_dir), purge_step=resume_step)
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    def scalars(self, prefix: str, values: dict[str, float], keys: tuple, step: int) -> None:
        """One scalar per key of ``keys``, tagged ``prefix/key`` (``train/loss``, ``dev/bleu``)."""
        for key in keys:
            self.writer.add_scalar(f"{prefix}/{key}", values[key], step)
        self.writer.flush()

    def attention(self, translator, sources: list[str], step: int) -> None:
        """Greedy translations of ``sources`` with their attention, as images
        ``attention/<i>`` (output tokens down, source tokens across)."""
        from transduce.plot import attention_figure

        results = translator.search(sources, beam_size=1, attention=True)
        for i, best in enumerate(results):
            res = best[0] if best else None
            if res is None or res.attention is None or not res.src_tokens:
                continue
            fig = attention_figure(res.attention, res.src_tokens, res.tgt_tokens,
                                   title=res.text[:80], copy=res.copy)
            self.writer.add_figure(f"attention/{i}", fig, step, close=True)
        self.writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
