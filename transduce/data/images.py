"""Images as sources (``data.src_type: image``): loading, the decoded-image cache, normalization
and training-time augmentation.

The source file of an image corpus lists one image path per line, relative to the list file
(``corpus.read_corpora`` resolves them); line i is captioned by line i of the target file. Pillow
reads PNG, JPEG, WebP and whatever else it knows; transparency is composited on white, the image
is scaled to fit ``data.image_size`` pixels per side (aspect kept, centred on white) and kept as
uint8 (:class:`Images`), so an epoch never decodes a file again. The encoder sees
``(pixels / 255 - MEAN) / STD``; training batches are first shifted by a few pixels and their
colours jittered slightly (:func:`augment`; never flipped: captions name sides).

The CNN encoder halves the resolution :data:`STRIDE_STAGES` times, so an image gives
``(image_size / STRIDE) ** 2`` attention cells (:func:`cells`), the "source length" of batching
and search.
"""
from __future__ import annotations

import io
import statistics
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from transduce.config import Config
from transduce.errors import TransduceError

STRIDE_STAGES = 3  # stride-2 stages of the CNN encoder (model/cnn.py)
STRIDE = 2 ** STRIDE_STAGES  # data.image_size is a multiple of it
MEAN = (0.485, 0.456, 0.406)  # the usual ImageNet statistics: a fixed, documented scale
STD = (0.229, 0.224, 0.225)
DEFAULT_RANGE = (32, 128)  # data.image_size chosen from the data stays within these
SHIFT = 1 / 16  # augmentation: the largest shift, as a share of the side
JITTER = 0.1  # augmentation: brightness, contrast and saturation factors within 1 +- JITTER
MAX_PIXELS = 50_000_000  # larger images are refused before decoding (memory, time)


def cells(image_size: int) -> int:
    """Attention cells of one image: the CNN's last feature map is (image_size / STRIDE)^2."""
    return (image_size // STRIDE) ** 2


def _open(source: str | Path | bytes, where: str):
    """The opened (not yet decoded) image of a path or of a file's bytes (an upload); a missing,
    non-image or oversized file is a one-line error. ``where``: ``LISTFILE:LINE: `` or "" (then
    the message starts with the path)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, bytes):
        path, file = "the image", io.BytesIO(source)
    else:
        path = file = Path(source)
        if not path.is_file():
            what = "not found" if not path.exists() else "not a regular file"
            raise TransduceError(f"{where}{path}: image {what}; fix the path (a list file's "
                                 "paths are relative to the list file)")
    try:
        im = Image.open(file)
    except UnidentifiedImageError:
        raise TransduceError(f"{where}{path}: not an image Pillow can read; give a PNG, JPEG or "
                             "WebP file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise TransduceError(f"{where}{path}: cannot read the image ({e}); fix or replace the "
                             "file") from None
    if im.width * im.height > MAX_PIXELS:  # a few KB of PNG can claim gigapixels
        im.close()
        raise TransduceError(f"{where}{path}: {im.width} x {im.height} pixels, over "
                             f"{MAX_PIXELS:,}; scale the image down")
    return im


def load_image(source: str | Path | bytes, size: int, where: str = "") -> np.ndarray:
    """One image (a path, or a file's bytes) as (3, size, size) uint8 RGB: EXIF orientation
    applied, transparency composited on white, scaled to fit (aspect kept) and centred on a
    white square."""
    from PIL import Image, ImageOps

    path = "the image" if isinstance(source, bytes) else source
    with _open(source, where) as im:
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            im = im.convert("RGB")
        except (OSError, ValueError, SyntaxError) as e:  # truncated or damaged data
            raise TransduceError(f"{where}{path}: cannot decode the image ({e}); fix or "
                                 "replace the file") from None
    scale = size / max(im.size)
    w, h = (max(1, round(side * scale)) for side in im.size)
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(im.resize((w, h), Image.Resampling.LANCZOS), ((size - w) // 2, (size - h) // 2))
    return np.asarray(canvas, dtype=np.uint8).transpose(2, 0, 1)


def default_image_size(paths: Sequence[str], list_path: Path, sample: int = 1000) -> int:
    """``data.image_size`` chosen from the data: the median longer side of (the first
    ``sample`` of) the training images, rounded to a multiple of :data:`STRIDE` within
    :data:`DEFAULT_RANGE` (only the file headers are read)."""
    sides = []
    for i, p in enumerate(paths[:sample]):
        if p:
            with _open(p, f"{list_path}:{i + 1}: ") as im:
                sides.append(max(im.size))
    if not sides:
        raise TransduceError(f"{list_path}: no image paths; a list file names one image per line")
    side = STRIDE * round(statistics.median(sides) / STRIDE)
    return int(min(max(side, DEFAULT_RANGE[0]), DEFAULT_RANGE[1]))


def resolve_image_size(config: Config, paths: Sequence[str], list_path: Path
                       ) -> tuple[Config, str]:
    """``config`` with ``data.image_size`` chosen from the training images when unset
    (:func:`default_image_size`), and the choice for the log ("" when there was none to make);
    config.yaml records it, so decoding resizes the same way."""
    d = config.data
    if d.src_type != "image" or d.image_size is not None:
        return config, ""
    size = default_image_size(paths, list_path)
    return (config.model_copy(update={"data": d.model_copy(update={"image_size": size})}),
            f"data.image_size: {size} (the median longer side of the training images, within "
            f"{DEFAULT_RANGE[0]}-{DEFAULT_RANGE[1]}; set it to choose)")


class Images:
    """Decoded images: ``pixels`` (n, 3, size, size) uint8, decoded once."""

    def __init__(self, pixels: torch.Tensor):
        self.pixels = pixels

    @classmethod
    def load(cls, paths: Sequence[str | bytes], size: int, list_path: Path | None = None,
             lines: Sequence[int] | None = None) -> "Images":
        """Decode ``paths`` (or files' bytes); errors name ``list_path`` and the line (0-based
        ``lines[i]``, by default i), or with no ``list_path`` just the path."""
        lines = range(len(paths)) if lines is None else lines
        arrays = [load_image(p, size, f"{list_path}:{n + 1}: " if list_path else "")
                  for p, n in zip(paths, lines)]
        pixels = torch.from_numpy(np.stack(arrays)) if arrays else \
            torch.empty(0, 3, size, size, dtype=torch.uint8)
        return cls(pixels)

    def __len__(self) -> int:
        return len(self.pixels)

    def batch(self, idx: Sequence[int] | np.ndarray, train: bool = False) -> torch.Tensor:
        """Normalized pixels (batch, 3, size, size), augmented when ``train``."""
        x = self.pixels[torch.as_tensor(np.asarray(idx), dtype=torch.long)].float() / 255
        return normalize(augment(x) if train else x)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """(batch, 3, H, W) in [0, 1] -> what the encoder reads."""
    mean, std = (torch.tensor(v, dtype=x.dtype).view(1, 3, 1, 1) for v in (MEAN, STD))
    return (x - mean) / std


def augment(x: torch.Tensor) -> torch.Tensor:
    """Training-time augmentation of (batch, 3, H, W) in [0, 1]: each image shifted by up to
    ``SHIFT`` of its side (the border filled white), and its brightness, contrast and saturation
    scaled by factors within 1 +- ``JITTER``. No flips: a caption may say "left of".

    Draws from torch's global RNG, which ``last/`` saves, so a resumed run sees the same
    augmentations."""
    b, _, h, w = x.shape
    m = max(1, round(SHIFT * max(h, w)))
    padded = F.pad(x, (m, m, m, m), value=1.0)  # (batch, 3, H + 2m, W + 2m)
    dy, dx = torch.randint(0, 2 * m + 1, (2, b)).tolist()
    x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    bright, contrast, sat = (1 + JITTER * (2 * torch.rand(3, b, 1, 1, 1) - 1)).unbind(0)
    x = x * bright
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (batch, 1, 1, 1)
    x = (x - mean) * contrast + mean
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return ((x - gray) * sat + gray).clamp(0.0, 1.0)
