"""Augmentations that a method or add-on names: `AUGMENTS.get(name)(x, generator)`.

Every augmentation is a function of a batch of images x (N, C, H, W) in
[-1, 1] (the harness's range) and an optional `torch.Generator` on x's
device (None: torch's default generator of that device), returning a batch
of the same shape (in [-1, 1] too, except `diffaug`, which like the
authors' code does not clamp what its brightness shift moves out). All are batched on the device (no per-image
Python loop, no host synchronisation), differentiable with respect to x
(G is trained through them), and drawn from the generator only, so the
same generator state gives the same output.

| name | from | what |
|---|---|---|
| `simclr` | ContraD (Jeong & Shin 2021, `augment/`), SimCLR's recipe | random resized crop (scale 0.2-1, ratio 3/4-4/3), horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale with p = 0.2 |
| `diffaug` | DiffAugment (Zhao et al. 2020, `DiffAugment_pytorch.py`) | policy "color,translation,cutout" |
| `flip-translate` | ICR / CR (Zhao et al. 2021, Zhang et al. 2020) | horizontal flip p = 1/2, shift by up to H/8 px with reflection |

`simclr` as the ContraD code runs it (read there, written here):
- Crop and flip are one bilinear `grid_sample` with reflection padding
  (the code's two, crop then flip, sample the same points). The crop size
  is drawn as in the code: 10 candidate (scale, log-ratio) pairs per image,
  w = round(sqrt(s A r)), h = round(sqrt(s A / r)); the first candidate
  that fits the image is used and an image with none keeps its full frame
  (the code draws 10 N candidates for the batch and picks N fitting ones at
  random: the same distribution, drawn without a data-dependent shape).
  The offset is an integer in [w - W, W - w], in units of 2/W.
- Colour jitter works in [0, 1]: contrast scales each channel around its
  own spatial mean by U(0.6, 1.4); brightness, saturation and hue are
  applied in HSV (V and S times U(0.6, 1.4), hue shifted by U(-0.1, 0.1)
  x 255/360 of the circle, which is what the code does), with the code's
  straight-through gradient (the HSV step passes the incoming gradient on
  unchanged, `RandomHSVFunction.backward`). The order of the two (contrast
  first or HSV first) is drawn once per batch, as the code does; both are
  computed and one is selected on the device, so no value is read back.
  Each step clamps to [0, 1].
- Grayscale is 0.299 R + 0.587 G + 0.114 B on all three channels.
- "With p" is per image: a Bernoulli mask blends the transformed and the
  untransformed batch (the code's `RandomApply`).
- One-channel images (Fashion-MNIST) are the grey RGB images they stand
  for: hue and saturation leave a grey pixel grey, so colour jitter is
  brightness and contrast only, and grayscale is the identity.

`diffaug`: brightness + U(-0.5, 0.5), saturation (x - channel mean) x
U(0, 2), contrast (x - image mean) x U(0.5, 1.5), translation by up to
1/8 of the size with zero fill, cutout of a half-size square with zero
fill, per image, in that order, on the [-1, 1] images as the authors feed
them. On one channel saturation is the identity (the channel mean is the
pixel).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from bench.registry import Registry

Augment = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]
AUGMENTS = Registry("augmentation", "ganbench.augments")
SEED_TAG = 0x41554735  # "AUG5": an augmentation stream apart from the cell's other random streams


def generator_for(device: torch.device, seed: int) -> torch.Generator:
    """The augmentation generator of a run with cell seed `seed`, on `device`."""
    return torch.Generator(device=device).manual_seed(SEED_TAG * 1_000_003 + seed)


def _uniform(shape, low: float, high: float, like: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(shape, device=like.device, dtype=like.dtype, generator=generator) * (high - low) + low


def _per_image(p: float, like: torch.Tensor, generator) -> torch.Tensor:
    """A (N, 1, 1, 1) 0/1 mask, 1 with probability p per image."""
    return (torch.rand(len(like), 1, 1, 1, device=like.device, generator=generator) < p).to(like.dtype)


# -- simclr ---------------------------------------------------------------------
def resized_crop_and_flip(u: torch.Tensor, generator=None, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), tries: int = 10) -> torch.Tensor:
    """SimCLR's random resized crop, then a horizontal flip with p = 1/2, as one resampling."""
    n, _, height, width = u.shape
    area = height * width
    target = _uniform((n, tries), scale[0], scale[1], u, generator) * area
    aspect = torch.exp(_uniform((n, tries), math.log(ratio[0]), math.log(ratio[1]), u, generator))
    w, h = torch.round(torch.sqrt(target * aspect)), torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first candidate that fits
    found = fits.any(dim=1)
    w = torch.where(found, w.gather(1, first)[:, 0], torch.full_like(w[:, 0], width))
    h = torch.where(found, h.gather(1, first)[:, 0], torch.full_like(h[:, 0], height))
    # integer offsets in [w - W, W - w] (the code's randint), in units of 2/W of grid space
    shift_x = torch.floor(_uniform((n,), 0, 1, u, generator) * (2 * (width - w) + 1)) + (w - width)
    shift_y = torch.floor(_uniform((n,), 0, 1, u, generator) * (2 * (height - h) + 1)) + (h - height)
    sign = torch.where(_uniform((n,), 0, 1, u, generator) < 0.5, -1.0, 1.0).to(u.dtype)
    theta = torch.zeros(n, 2, 3, device=u.device, dtype=u.dtype)
    theta[:, 0, 0] = sign * w / width  # the flip mirrors the crop's output: the x scale changes sign
    theta[:, 0, 2] = shift_x / width
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = shift_y / height
    grid = F.affine_grid(theta, list(u.shape), align_corners=False)
    return F.grid_sample(u, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> hue in [0, 1), saturation, value (hue from atan2, as ContraD)."""
    r, g, b = rgb.unbind(1)
    high, low = rgb.amax(1), rgb.amin(1)
    hue = torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b).remainder(2 * math.pi) / (2 * math.pi)
    saturation = 1 - low / (high + 1e-8)
    hsv = torch.stack([hue, saturation, high], dim=1)
    return torch.where(torch.isfinite(hsv), hsv, torch.zeros_like(hsv))


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv[:, :1], hsv[:, 1:2], hsv[:, 2:3]
    k = (torch.tensor([5.0, 3.0, 1.0], device=hsv.device, dtype=hsv.dtype).view(1, 3, 1, 1) + h * 6).remainder(6)
    return v - v * s * torch.minimum(k, 4 - k).clamp(0, 1)


def _hsv_jitter(u: torch.Tensor, hue, saturation, value) -> torch.Tensor:
    if u.shape[1] == 1:  # a grey pixel has saturation 0: only V changes
        out = (u * value).clamp(0, 1)
    else:
        hsv = rgb_to_hsv(u)
        h = (hsv[:, :1] + hue * 255.0 / 360.0).remainder(1.0)
        out = hsv_to_rgb(torch.cat([h, hsv[:, 1:2] * saturation, hsv[:, 2:3] * value], dim=1).clamp(0, 1))
    return u + (out - u).detach()  # ContraD's straight-through gradient for the HSV step


def _contrast(u: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = u.mean(dim=(2, 3), keepdim=True)
    return ((u - mean) * factor + mean).clamp(0, 1)


def colour_jitter(u: torch.Tensor, generator=None, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1) -> torch.Tensor:
    """ContraD's ColorJitterLayer on [0, 1] images (see the module docstring)."""
    shape = (len(u), 1, 1, 1)
    f_contrast = _uniform(shape, 1 - contrast, 1 + contrast, u, generator)
    f_hue = _uniform(shape, -hue, hue, u, generator)
    f_saturation = _uniform(shape, 1 - saturation, 1 + saturation, u, generator)
    f_value = _uniform(shape, 1 - brightness, 1 + brightness, u, generator)
    contrast_first = torch.rand((), device=u.device, generator=generator) < 0.5
    a = _hsv_jitter(_contrast(u, f_contrast), f_hue, f_saturation, f_value)
    b = _contrast(_hsv_jitter(u, f_hue, f_saturation, f_value), f_contrast)
    return torch.where(contrast_first, a, b)


def grayscale(u: torch.Tensor) -> torch.Tensor:
    if u.shape[1] == 1:
        return u
    weights = torch.tensor([0.299, 0.587, 0.114], device=u.device, dtype=u.dtype).view(1, 3, 1, 1)
    return (u * weights).sum(1, keepdim=True).expand_as(u)


@AUGMENTS.register("simclr")
def simclr(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """SimCLR's augmentation as ContraD runs it, on [-1, 1] images (see the module docstring)."""
    if x.shape[1] not in (1, 3):
        raise ValueError(f"the simclr augmentation takes 1- or 3-channel images, got {x.shape[1]} channels")
    u = resized_crop_and_flip((x + 1) / 2, generator)
    jitter = _per_image(0.8, u, generator)
    u = u * (1 - jitter) + colour_jitter(u, generator) * jitter
    grey = _per_image(0.2, u, generator)
    u = u * (1 - grey) + grayscale(u) * grey
    return u * 2 - 1


# -- diffaug ----------------------------------------------------------------------
def _translation(x: torch.Tensor, generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, height, width = x.shape
    sy, sx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device, generator=generator)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device, generator=generator)
    rows = (torch.arange(height, device=x.device).view(1, -1, 1) + ty + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=x.device).view(1, 1, -1) + tx + 1).clamp(0, width + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # a zero border the clamped indices fall into
    batch = torch.arange(n, device=x.device).view(-1, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, height, width = x.shape
    ch, cw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    oy = torch.randint(0, height + (1 - ch % 2), (n, 1, 1), device=x.device, generator=generator) - ch // 2
    ox = torch.randint(0, width + (1 - cw % 2), (n, 1, 1), device=x.device, generator=generator) - cw // 2
    rows = torch.arange(height, device=x.device).view(1, -1, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, -1)
    cut = (rows >= oy) & (rows < oy + ch) & (cols >= ox) & (cols < ox + cw)
    return x * (~cut).unsqueeze(1).to(x.dtype)


@AUGMENTS.register("diffaug")
def diffaug(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment's "color,translation,cutout" policy (see the module docstring)."""
    shape = (len(x), 1, 1, 1)
    x = x + _uniform(shape, -0.5, 0.5, x, generator)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * _uniform(shape, 0.0, 2.0, x, generator) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - image_mean) * _uniform(shape, 0.5, 1.5, x, generator) + image_mean
    return _cutout(_translation(x, generator), generator)


# -- flip-translate ----------------------------------------------------------------
@AUGMENTS.register("flip-translate")
def flip_and_translate(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image: horizontal flip with p = 1/2, then a shift by up to max(1, H // 8)
    pixels in each direction, the border filled by reflection."""
    n, c, h, w = x.shape
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    index = torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None]
    return padded[index[0], index[1], rows, cols]
