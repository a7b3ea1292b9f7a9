"""Attention heatmaps: target tokens down, source tokens across."""
from __future__ import annotations

from pathlib import Path

import torch


def plot_attention(attention: torch.Tensor, src_tokens: list[str], tgt_tokens: list[str],
                   out: str | Path, title: str = "") -> Path:
    """Save a heatmap of ``attention`` (tgt_len [+1 for </s>], src_len) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(tgt_tokens) + ["</s>"] * (attention.size(0) - len(tgt_tokens))
    data = attention[: len(rows), : len(src_tokens)].float().numpy()
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(src_tokens) + 2),
                                    max(3, 0.35 * len(rows) + 1.5)))
    im = ax.imshow(data, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)
