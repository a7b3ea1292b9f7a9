"""Attention figures: for text, a heatmap (target tokens down, source tokens across); for an
image, Show, Attend and Tell's figure (the image once per output word, that word's attention
over it)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


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


def image_attention_figure(image: np.ndarray, attention: torch.Tensor, tgt_tokens: list[str],
                           title: str = "", columns: int = 5):
    """A matplotlib figure: ``image`` (H, W, 3) uint8 once per output word (and ``</s>``), under
    that word's attention (tgt_len [+1], cells), the grid of cells (square: the CNN's feature
    map) upsampled bilinearly to the image; the caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(tgt_tokens) + ["</s>"] * (attention.size(0) - len(tgt_tokens))
    side = math.isqrt(attention.size(1))
    grid = attention[: len(rows)].float().view(len(rows), 1, side, side)  # (words, 1, g, g)
    maps = F.interpolate(grid, size=image.shape[:2], mode="bilinear", align_corners=False)
    maps = maps / maps.amax(dim=(2, 3), keepdim=True).clamp_min(1e-9)  # each word's own scale
    n_cols = min(columns, len(rows) + 1)
    n_rows = math.ceil((len(rows) + 1) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.4 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("input")
    for ax, word, heat in zip(axes.flat[1:], rows, maps[:, 0].numpy()):
        ax.imshow(image)
        ax.imshow(heat, cmap="gray", alpha=0.6, vmin=0.0, vmax=1.0)
        ax.set_title(word)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_figure(fig, out: str | Path) -> Path:
    """Write a figure from this module (a PNG, or the format ``out``'s suffix names), close it."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return Path(out)


def plot_attention(attention: torch.Tensor, src_tokens: list[str], tgt_tokens: list[str],
                   out: str | Path, title: str = "", copy: torch.Tensor | None = None) -> Path:
    """Save a heatmap of ``attention`` (tgt_len [+1 for </s>], src_len) as a PNG."""
    return save_figure(attention_figure(attention, src_tokens, tgt_tokens, title, copy), out)
