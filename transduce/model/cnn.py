"""The image encoder (``model.encoder: cnn``): a small residual CNN whose last feature map is the
attention memory, as in Show, Attend and Tell (Xu et al., 2015).

A stem convolution at full resolution, then ``STRIDE_STAGES`` residual stages that each halve the
resolution (widths C/4, C/2, C with C = ``model.encoder_hidden_size``), GroupNorm throughout (no
batch statistics: an image's features do not depend on its batch). The (H', W', C) map becomes
H'·W' memory cells with a fixed 2-D sinusoidal position term, so attention knows where a cell
is; the decoder's initial state comes from the mean feature through the bridge.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from transduce.data.images import STRIDE_STAGES


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResidualBlock(nn.Module):
    """relu(norm(conv(relu(norm(conv(x))))) + shortcut(x)); the first conv may stride 2."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), _norm(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), _norm(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def grid_positions(height: int, width: int, channels: int, device: torch.device | None = None
                   ) -> torch.Tensor:
    """2-D sinusoidal position term (height * width, channels): the first half of the channels
    encodes the row, the second half the column (each as Transformer sin/cos pairs)."""
    half = channels // 2

    def encode(n: int, dims: int) -> torch.Tensor:  # (n, dims)
        pos = torch.arange(n, dtype=torch.float32, device=device).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dims, 2, dtype=torch.float32, device=device)
                         * (-math.log(10_000.0) / max(dims, 1)))
        pe = torch.zeros(n, dims, device=device)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq[:dims // 2])
        return pe

    rows = encode(height, half).unsqueeze(1).expand(height, width, half)
    cols = encode(width, channels - half).unsqueeze(0).expand(height, width, channels - half)
    return torch.cat([rows, cols], dim=-1).reshape(height * width, channels)


class ImageEncoder(nn.Module):
    """Images (batch, 3, S, S) -> memory (batch, (S / 8)^2, C) and the decoder bridge's input."""

    def __init__(self, channels: int, cell: str = "lstm", layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.cell, self.layers, self.output_size = cell, layers, channels
        widths = [max(8, channels // 2 ** (STRIDE_STAGES - 1 - i)) for i in range(STRIDE_STAGES)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), _norm(widths[0]),
                                  nn.ReLU())
        ins = [widths[0]] + widths[:-1]
        self.stages = nn.Sequential(*(ResidualBlock(c_in, c_out, 2)
                                      for c_in, c_out in zip(ins, widths)))
        self.project = nn.Conv2d(widths[-1], channels, 1) if widths[-1] != channels else None
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        """He initialization for convolutions (ReLU nets), unit scale and zero shift for norms."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor, src_lens: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """
        Args:
            images: (batch, 3, S, S) normalized pixels; src_lens: unused (every cell is real).
        Returns:
            memory: (batch, H' * W', C) feature cells plus their position term.
            final: (layers, batch, C) the mean feature per layer (a pair for LSTM), which the
                decoder's bridge turns into its initial state.
        """
        x = self.stages(self.stem(images))  # (batch, C_last, H', W')
        if self.project is not None:
            x = self.project(x)  # (batch, C, H', W')
        b, c, h, w = x.shape
        feats = x.flatten(2).transpose(1, 2)  # (batch, H' * W', C)
        memory = self.dropout(feats + grid_positions(h, w, c, x.device).to(feats.dtype))
        mean = feats.mean(dim=1).unsqueeze(0).expand(self.layers, b, c)  # (layers, batch, C)
        return memory, ((mean, mean) if self.cell == "lstm" else mean)
