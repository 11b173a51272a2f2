"""NIQE (Mittal et al. 2012) with the natural-scene model fitted on the data set's own real images.

Shared by the `niqe` metric (bench/metrics/niqe.py) and by methods that rank
their own samples by NIQE (Dual-NDA's Type II negatives), so it lives
outside bench/metrics/ and imports nothing from there.

Two protocols (`Protocol`, a data set declares its own as `niqe`):
- HARNESS, this module's first recipe: images upsampled (bicubic) to 192 px,
  96x96 blocks, one model fitted on 2,000 training images (fixed seed),
  blocks above 0.75 of their image's sharpest.
- The CcGAN / Dual-NDA authors' MATLAB protocol (AUTHORS_64,
  AUTHORS_64_PER_LABEL): `fitniqe(imds, 'BlockSize', [8 8],
  'SharpnessThreshold', 0.1)` on every real image at its native 64x64
  (improved_CcGAN NIQE/UTKFace/NIQE_64x64/Intra_niqe_train_utkface.m:7,18,
  one model per age; NIQE/SteeringAngle/NIQE_64x64/niqe_train_steeringangle.m:
  4,16, one model of the whole data set), `niqe(img, model)` to score.
Block features are computed the same way in both, as pyiqa's NIQE (the
MATLAB release ported by BasicSR): gray / Y (YIQ) channel at [0, 255]
rounded, MSCN coefficients with a 7x7 Gaussian (sigma 7/6, replicate
padding), 18 AGGD features per block at two scales (the second after
MATLAB's antialiased bicubic halving, blocks of half the size). Fitting
follows MATLAB's `estimatemodelparam`: per image, the blocks whose sharpness
(mean local deviation) exceeds the threshold times the image's sharpest
block; then the mean and covariance of their features, cached on disk. The
score of an image is sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu))
with mu, S from its own blocks.

API: `pristine_model(dataset)` -> the cached model of a data set (its
balanced training split) under its protocol; `fit(images, protocol)` -> a
model of any [-1, 1] images; `niqe_of(images, model, labels)` -> NIQE per
[-1, 1] image (NaN where undefined), each by the fit of its label;
`Protocol.prepare` + `scores` are the two steps of `niqe_of`.
tests/test_metrics_niqe.py checks the score equals pyiqa's NIQE given the
same parameters as a .mat file (pyiqa is the optional extra `niqe`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.cache import build_once, cache_dir

BLOCK = 96
UPSAMPLED = 192
SHARPNESS_THRESHOLD = 0.75
FIT_IMAGES = 2000
FIT_SEED = 0
RECIPE = "niqe-v1"
BATCH = 64


@dataclass(frozen=True)
class Protocol:
    """How a data set's NIQE is fitted and scored.

    HARNESS is the recipe this module had first (upsampled to 192 px, 96-px blocks, blocks
    above 0.75 of an image's sharpest, one model from 2,000 training images); data sets
    whose published protocol differs declare their own as `niqe` (bench.data)."""

    block: int = BLOCK
    upsample_to: int = UPSAMPLED  # 0: the native resolution
    sharpness: float = SHARPNESS_THRESHOLD  # fitniqe's SharpnessThreshold, relative to the image's sharpest block
    per_label: bool = False  # one model per distinct training label (Intra_niqe_train_utkface.m)
    fit_images: int = FIT_IMAGES  # 0: every training image
    recipe: str = RECIPE

    def size(self, resolution: int) -> int:
        return max(resolution, self.upsample_to) if self.upsample_to else resolution

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> [0, 1] at the size the protocol scores them."""
        if self.upsample_to:
            return upsample(images, self.upsample_to)
        return images.float().clamp(-1, 1).add(1).div(2)

    def facts(self) -> dict:
        return {"block": self.block, "size": self.upsample_to or "native", "sharpness": self.sharpness,
                "per_label": self.per_label, "fit_images": self.fit_images or "all"}  # fmt: skip


HARNESS = Protocol()
# The Dual-NDA / CcGAN authors' MATLAB NIQE (UBCDingXin/improved_CcGAN, NIQE/UTKFace/NIQE_64x64/
# Intra_niqe_train_utkface.m:7,18 and NIQE/SteeringAngle/NIQE_64x64/niqe_train_steeringangle.m:4,16):
# fitniqe(all real images, 'BlockSize', [8 8], 'SharpnessThreshold', 0.1) on the native 64x64 images,
# per age for UTKFace, one model of the whole data set for Steering Angle.
AUTHORS_64 = Protocol(block=8, upsample_to=0, sharpness=0.1, fit_images=0, recipe="niqe-matlab-v1")
AUTHORS_64_PER_LABEL = Protocol(block=8, upsample_to=0, sharpness=0.1, per_label=True, fit_images=0, recipe="niqe-matlab-v1")


def protocol_of(dataset) -> Protocol:
    return getattr(dataset, "niqe", None) or HARNESS


def upsample(images: torch.Tensor, to: int = UPSAMPLED) -> torch.Tensor:
    """[-1, 1] (N, C, r, r) -> [0, 1] (N, C, S, S), S = max(r, to), bicubic."""
    size = max(images.shape[-1], to)
    x = images.float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.clamp(-1, 1).add(1).div(2)


def to_gray255(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] (N, 1|3, H, W) -> rounded [0, 255] float64 luminance (YIQ's Y for RGB), as pyiqa does."""
    if x.shape[1] == 3:
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]]).t().to(x)
        x = torch.matmul(x.permute(0, 2, 3, 1), yiq).permute(0, 3, 1, 2)[:, [0]]
    return (x * 255).round().to(torch.float64)


def _gaussian_window(size: int = 7, sigma: float = 7.0 / 6) -> torch.Tensor:
    m = (size - 1) / 2
    y, x = np.ogrid[-m : m + 1, -m : m + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    h /= h.sum()
    return torch.from_numpy(h).float().view(1, 1, size, size)  # float32, as MATLAB's port keeps it


def mscn(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-subtracted contrast-normalised coefficients and the local deviation map."""
    k = _gaussian_window().to(img)
    pad = (3, 3, 3, 3)
    mu = F.conv2d(F.pad(img, pad, mode="replicate"), k)
    second = F.conv2d(F.pad(img**2, pad, mode="replicate"), k)
    sigma = torch.sqrt((second - mu**2).abs() + torch.finfo(img.dtype).eps)
    return (img - mu) / (sigma + 1), sigma


@functools.lru_cache(maxsize=8)
def _aggd_grid(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(gamma, r(gamma)) on pyiqa's grid 0.2:0.001:10, computed once per dtype and device."""
    gam = torch.arange(0.2, 10 + 0.001, 0.001).to(dtype=dtype, device=device)
    return gam, (2 * torch.lgamma(2.0 / gam) - (torch.lgamma(1.0 / gam) + torch.lgamma(3.0 / gam))).exp()


def nearest(grid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """argmin_i |grid_i - x| for each x, the first index on a tie and 0 for NaN (what pyiqa's
    argmin over the whole grid gives), by binary search: `grid` (AGGD's r(gamma)) increases
    strictly, and 8x8 blocks make millions of rows, too many for a 9,801-wide row each."""
    hi = torch.searchsorted(grid, x.contiguous()).clamp(max=len(grid) - 1)
    lo = (hi - 1).clamp(min=0)
    pick = torch.where((grid[hi] - x).abs() < (grid[lo] - x).abs(), hi, lo)
    return torch.where(torch.isnan(x), torch.zeros_like(pick), pick)


def aggd(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric generalised Gaussian fit (alpha, beta_left, beta_right) of (n, 1, h, w) blocks."""
    gam, r_gam = _aggd_grid(block.dtype, block.device)
    left, right = block < 0, block > 0
    left_std = torch.sqrt((block * left).pow(2).sum(dim=(-1, -2)) / left.sum(dim=(-1, -2), dtype=torch.float32))
    right_std = torch.sqrt((block * right).pow(2).sum(dim=(-1, -2)) / right.sum(dim=(-1, -2), dtype=torch.float32))
    gammahat = left_std / right_std
    rhat = block.abs().mean(dim=(-1, -2)).pow(2) / block.pow(2).mean(dim=(-1, -2))
    rhatnorm = (rhat * (gammahat.pow(3) + 1) * (gammahat + 1)) / (gammahat.pow(2) + 1).pow(2)
    alpha = gam[nearest(r_gam, rhatnorm.reshape(-1))]
    scale = (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)).exp().sqrt()
    return alpha, left_std.squeeze(-1) * scale, right_std.squeeze(-1) * scale


def block_features(block: torch.Tensor) -> torch.Tensor:
    """The 18 NIQE features of each (n, 1, h, w) block."""
    alpha, bl, br = aggd(block)
    feats = [alpha, (bl + br) / 2]
    for shift in ([0, 1], [1, 0], [1, 1], [1, -1]):
        alpha, bl, br = aggd(block * torch.roll(block, shift, dims=(2, 3)))
        mean = (br - bl) * (torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha)).exp()
        feats.extend((alpha, mean, bl, br))
    return torch.stack([f.reshape(-1) for f in feats], dim=1)


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    """(b, 1, H, W) -> (b * nblocks, 1, size, size), whole blocks only."""
    b = x.shape[0]
    nh, nw = x.shape[-2] // size, x.shape[-1] // size
    x = x[..., : nh * size, : nw * size]
    return x.reshape(b, 1, nh, size, nw, size).permute(0, 2, 4, 1, 3, 5).reshape(b * nh * nw, 1, size, size)


def halve(img: torch.Tensor) -> torch.Tensor:
    """MATLAB imresize(img, 0.5) (bicubic, antialiased), computed in float32 as pyiqa does."""
    out = img.float()
    taps = 10  # ceil(4 / 0.5) + 2
    t = (4.5 - torch.arange(taps, dtype=torch.float32)) * 0.5
    a = -0.5
    at = t.abs()
    w = ((a + 2) * at**3 - (a + 3) * at**2 + 1) * (at <= 1) + (a * at**3 - 5 * a * at**2 + 8 * a * at - 4 * a) * ((at > 1) & (at <= 2))
    w = w / w.sum()
    for dim in (-2, -1):
        n = out.shape[dim]
        # MATLAB's symmetric padding repeats the edge sample; 4 samples each side.
        idx = torch.cat([torch.arange(3, -1, -1), torch.arange(n), torch.arange(n - 1, n - 5, -1)])
        padded = out.index_select(dim, idx)
        starts = torch.arange(n // 2) * 2  # output i reads padded[2i : 2i + 10]
        stack = torch.stack([padded.index_select(dim, starts + k) for k in range(taps)], dim=1)
        shape = [1] * stack.dim()
        shape[1] = taps
        out = (stack * w.view(shape)).sum(dim=1)
    return out.to(img.dtype)


def image_features(gray: torch.Tensor, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, nblocks, 36) block features of rounded [0, 255] float64 images and (b, nblocks) sharpness."""
    b = gray.shape[0]
    nh, nw = gray.shape[-2] // block, gray.shape[-1] // block
    if nh == 0 or nw == 0:
        raise ValueError(f"NIQE needs images of at least {block}x{block} pixels, got {tuple(gray.shape[-2:])}")
    img = gray[..., : nh * block, : nw * block]
    feats = []
    sharpness = None
    for scale in (1, 2):
        normalised, sigma = mscn(img)
        feats.append(block_features(_blocks(normalised, block // scale)).reshape(b, nh * nw, 18))
        if scale == 1:
            sharpness = _blocks(sigma, block).mean(dim=(1, 2, 3)).reshape(b, nh * nw)
            img = halve(img / 255.0) * 255.0
    return torch.cat(feats, dim=-1), sharpness


def _batch(size: int, block: int) -> int:
    """Images per feature batch: about BATCH x 4 blocks, as many as the 96-px recipe's batches."""
    return max(1, BATCH * 4 // max(1, (size // block) ** 2))


def fit(images: torch.Tensor, protocol: Protocol | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu, cov, number of blocks used) of the pristine model, from [-1, 1] images."""
    protocol = protocol or HARNESS
    rows = []
    step = _batch(protocol.size(images.shape[-1]), protocol.block)
    for i in range(0, len(images), step):
        feats, sharp = image_features(to_gray255(protocol.prepare(images[i : i + step])), protocol.block)
        keep = sharp > protocol.sharpness * sharp.max(dim=1, keepdim=True).values
        rows.append(feats[keep])
    x = torch.cat(rows).numpy()
    complete = x[~np.isnan(x).any(axis=1)]
    if len(complete) < 2:
        raise ValueError("too few textured blocks in the real images to fit NIQE's model")
    # MATLAB's nanmean (per feature) and nancov (rows without NaN), as estimatemodelparam.
    return np.nanmean(x, axis=0), np.cov(complete, rowvar=False), len(complete)


def scores(images01: torch.Tensor, mu: np.ndarray, cov: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """NIQE of each [0, 1] image (blocks of `block` pixels; a remainder is cropped, as MATLAB's niqe)."""
    mu_p, cov_p = torch.from_numpy(mu).double(), torch.from_numpy(cov).double()
    out = []
    step = _batch(images01.shape[-1], block)
    for i in range(0, len(images01), step):
        feats, _ = image_features(to_gray255(images01[i : i + step]), block)
        for f in feats:
            m = torch.nanmean(f, dim=0)  # per feature, as pyiqa's nanmean
            f = f[~torch.isnan(f).any(dim=1)]  # whole rows, as its nancov
            if len(f) == 0:  # no textured block (a flat image): NIQE is undefined
                out.append(float("nan"))
                continue
            c = torch.cov(f.t(), correction=1 if len(f) > 1 else 0)
            inv = torch.linalg.pinv((cov_p + c) / 2)
            d = (mu_p - m).unsqueeze(0)
            out.append(math.sqrt(float(d @ inv @ d.t())))
    return np.asarray(out)


_models: dict[str, dict] = {}


def _fit_key(dataset, protocol: Protocol) -> dict:
    if protocol == HARNESS:  # the key models were cached under before protocols existed
        return {"dataset": dataset.name, "recipe": RECIPE, "images": FIT_IMAGES, "seed": FIT_SEED, "size": UPSAMPLED}
    return {"dataset": dataset.data_name(), "recipe": protocol.recipe, "seed": FIT_SEED, **protocol.facts()}


def pristine_model(dataset, protocol: Protocol | None = None) -> dict:
    """{"mu" (K, 36), "cov" (K, 36, 36), "labels" (K,) or None, "blocks", "images", "digest", "protocol"}:
    K = 1 model of the whole data set, or one per distinct training label (`protocol.per_label`);
    fitted once per data set and protocol (default: the data set's `niqe` declaration) and cached on disk."""
    protocol = protocol or protocol_of(dataset)
    key = _fit_key(dataset, protocol)
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    if tag in _models:
        return _models[tag]
    path = cache_dir("niqe") / f"{key['dataset']}-{tag}.npz"

    def write(tmp):
        train = dataset.train_set(imbalance=1, seed=FIT_SEED)
        n = min(protocol.fit_images, len(train.x)) if protocol.fit_images else len(train.x)
        idx = torch.from_numpy(np.sort(np.random.default_rng(FIT_SEED).permutation(len(train.x))[:n]))
        x, y = train.x[idx], train.y[idx].double().reshape(n, -1)[:, 0].numpy()
        if not protocol.per_label:
            mu, cov, blocks = fit(x, protocol)
            np.savez(tmp, mu=mu, cov=cov, blocks=blocks, images=n)
            return
        labels = np.unique(y)
        fitted = [fit(x[torch.from_numpy(y == v)], protocol) for v in labels]  # as Intra_niqe_train: one model per label
        np.savez(tmp, mu=np.stack([f[0] for f in fitted]), cov=np.stack([f[1] for f in fitted]),
                 blocks=sum(f[2] for f in fitted), images=n, labels=labels)  # fmt: skip

    build_once(path, write)
    with np.load(path) as f:
        model = {k: f[k] for k in ("mu", "cov")}
        model.update(blocks=int(f["blocks"]), images=int(f["images"]), labels=f["labels"] if "labels" in f else None)
    model["digest"] = hashlib.sha256(model["mu"].tobytes() + model["cov"].tobytes()).hexdigest()[:12]
    model["protocol"] = protocol
    _models[tag] = model
    return model


def model_for(model: dict, labels: np.ndarray) -> np.ndarray:
    """Which of the model's K fits scores an image of each label: the nearest fitted label (0 for one model)."""
    if model.get("labels") is None:
        return np.zeros(len(labels), dtype=np.int64)
    return np.abs(np.asarray(labels, dtype=np.float64)[:, None] - model["labels"][None, :]).argmin(axis=1)


def niqe_of(images: torch.Tensor, model: dict, labels: np.ndarray | None = None) -> np.ndarray:
    """NIQE of each [-1, 1] image under `model` (from `pristine_model`, or {"mu", "cov"} of one fit);
    an image is scored by the fit of its label (`labels`, needed when the model has one fit per label).
    NaN where no block is textured."""
    protocol = model.get("protocol", HARNESS)
    x = protocol.prepare(images)
    mu, cov = np.asarray(model["mu"]), np.asarray(model["cov"])
    if mu.ndim == 1:
        return scores(x, mu, cov, protocol.block)
    if model.get("labels") is not None and labels is None:
        raise ValueError("this NIQE model has one fit per label: give each image's label")
    which = model_for(model, labels if labels is not None else np.zeros(len(x)))
    out = np.full(len(x), np.nan)
    for k in np.unique(which):
        rows = np.flatnonzero(which == k)
        out[rows] = scores(x[torch.from_numpy(rows)], mu[k], cov[k], protocol.block)
    return out
