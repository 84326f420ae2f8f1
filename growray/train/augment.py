"""CIFAR-style augmentation of training batches, on the batch's own device (torch only, seeded).

``data.augment`` (``growray.config.AugmentConfig``) turns on, per training batch ``[B, C, H, W]``:

* ``random_crop: p``: zero-pad by ``p`` pixels and crop an ``H x W`` window at a uniformly
  random offset per sample (torchvision's ``RandomCrop(32, padding=4)`` in DARTS' search and
  retraining). The padding value is 0 *after* standardization (the dataset mean), where
  torchvision pads the raw image with black: the one departure;
* ``flip``: mirror each sample horizontally with probability 1/2;
* ``cutout: L``: zero an ``L x L`` square (clipped at the borders) centred at a uniformly random
  pixel per sample, after standardization, as DARTS' ``Cutout(16)``.

The random draws (offsets, flips, centres; a few numbers per sample) come from a CPU generator
seeded by ``(seed, step)``, so an augmented batch is a function of the experiment's seed and the
optimizer step: a resumed trial augments exactly as an uninterrupted one, and the global torch
RNG is never touched. The pixel work is one gather and two masks on the device. The trainer
applies it to training batches only (and NAS hooks to their architecture batches, which also
come from the training split); ``evaluate`` never sees it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from growray.checks import check_int

__all__ = ["BatchAugment"]

_MIX = 1_000_003


class BatchAugment:
    """Random crop (with padding), horizontal flip and cutout of image batches.

    Args:
        random_crop: padding in pixels (0: no crop).
        flip: random horizontal flips.
        cutout: side of the zeroed square (0: no cutout).
        seed: the experiment's seed.
    """

    def __init__(self, random_crop: int = 0, flip: bool = False, cutout: int = 0, seed: int = 0):
        self.random_crop = check_int("random_crop", random_crop, minimum=0)
        self.flip = bool(flip)
        self.cutout = check_int("cutout", cutout, minimum=0)
        self.seed = check_int("seed", seed, minimum=0)

    @property
    def enabled(self) -> bool:
        return self.random_crop > 0 or self.flip or self.cutout > 0

    def generator(self, step: int, stream: int = 0) -> torch.Generator:
        """The CPU generator of optimizer step ``step`` (``stream``: another batch of the same step,
        e.g. a NAS hook's architecture batch)."""
        return torch.Generator().manual_seed(((self.seed * _MIX + int(step)) * 7919 + int(stream)) % (2**63 - 1))

    def __call__(self, x: torch.Tensor, step: int, stream: int = 0) -> torch.Tensor:
        """The augmented batch (``x`` itself when nothing is enabled)."""
        if not self.enabled:
            return x
        if x.dim() != 4:
            raise ValueError(
                f"data.augment needs image batches [B, C, H, W]; got shape {tuple(x.shape)} "
                "(for digits set data.image: true, or remove data.augment)"
            )
        gen = self.generator(step, stream)
        b, _, h, w = x.shape
        if self.random_crop > 0:
            p = self.random_crop
            dy = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=gen).to(x.device)
            padded = F.pad(x, (p, p, p, p))
            rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chans, rows, cols]
        if self.flip:
            mirror = (torch.rand(b, generator=gen) < 0.5).to(x.device)[:, None, None, None]
            x = torch.where(mirror, x.flip(-1), x)
        if self.cutout > 0:
            half = self.cutout // 2
            cy = torch.randint(0, h, (b,), generator=gen).to(x.device)
            cx = torch.randint(0, w, (b,), generator=gen).to(x.device)
            r = torch.arange(h, device=x.device)[None, :]
            c = torch.arange(w, device=x.device)[None, :]
            in_rows = (r >= (cy - half)[:, None]) & (r < (cy + half)[:, None])
            in_cols = (c >= (cx - half)[:, None]) & (c < (cx + half)[:, None])
            hole = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
            x = x.masked_fill(hole, 0.0)
        return x
