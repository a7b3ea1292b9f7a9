"""Attention heatmaps: target tokens down, source tokens across."""
from __future__ import annotations

from pathlib import Path

import torch


def attention_figure(attention: torch.Tensor, src_tokens: list[str], tgt_tokens: list[str],
                     title: str = "", copy: torch.Tensor | None = None):
    """A matplotlib figure of ``attention`` (tgt_len [+1 for </s>], src_len); the caller closes
    it. ``copy`` (tgt_len [+1],): copy models' probability of copying each output token, drawn
    as one more column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(tgt_tokens) + ["</s>"] * (attention.size(0) - len(tgt_tokens))
    data = attention[: len(rows), : len(src_tokens)].float().numpy()
    size = (max(4, 0.35 * len(src_tokens) + 2.5), max(3, 0.35 * len(rows) + 1.5))
    if copy is None:
        fig, ax = plt.subplots(figsize=size)
    else:
        fig, (ax, cax) = plt.subplots(1, 2, figsize=size, sharey=True, gridspec_kw={
            "width_ratios": [max(1, len(src_tokens)), 1]})
        cax.imshow(copy[: len(rows)].float().numpy()[:, None], cmap="Oranges", vmin=0.0,
                   vmax=1.0, aspect="auto")
        cax.set_xticks([0], ["copy"], rotation=90)
    im = ax.imshow(data, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax if copy is None else fig.axes, fraction=0.04)
    fig.tight_layout()
    return fig


def plot_attention(attention: torch.Tensor, src_tokens: list[str], tgt_tokens: list[str],
                   out: str | Path, title: str = "", copy: torch.Tensor | None = None) -> Path:
    """Save a heatmap of ``attention`` (tgt_len [+1 for </s>], src_len) as a PNG."""
    import matplotlib.pyplot as plt

    fig = attention_figure(attention, src_tokens, tgt_tokens, title, copy)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)
