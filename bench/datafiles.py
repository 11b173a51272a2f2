"""Data files on disk: where they are looked up, how they are read, and the
decoded-tensor cache.

Lookup (`locate`), in order, for a data set `name` that needs `files`:
  1. the folder given in the sweep (`overrides.dataset.<name>.options.root`),
     then that folder's `<name>/` subfolder;
  2. $GANBENCH_DATA, then $GANBENCH_DATA/<name>;
  3. the Debian package folder /usr/share/datasets/<name> (e.g. the package
     `dataset-fashion-mnist` holds the four IDX .gz files there);
  4. torchvision's download into the cache, when the network allows and
     $GANBENCH_DOWNLOAD is not "0".
When nothing is found the UserError is one line naming every folder tried
and the ways to get the files.

Readers take the published formats as they are: IDX files still gzipped
(MNIST, Fashion-MNIST), the CIFAR "python version" pickles (read with an
unpickler that only admits the NumPy array types they contain), and the
CcGAN authors' 64x64 HDF5 files (`images` N×3×64×64 uint8, `labels`).

`decoded(key, sources, decode)` keeps decoded uint8 arrays as .npy files
under $GANBENCH_CACHE/decoded/<key>-<hash of the source files' paths, sizes
and times>, so a cell never decodes twice, and hands out one memory-mapped
copy per process.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import pickle
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench.cache import cache_dir, file_lock
from bench.errors import UserError

DATA_ENV = "GANBENCH_DATA"
DOWNLOAD_ENV = "GANBENCH_DOWNLOAD"
SYSTEM_ROOT = Path("/usr/share/datasets")


@dataclass(frozen=True)
class Source:
    """Where the files of one data set come from."""

    name: str  # the registered data set name; also the subfolder looked for
    files: tuple[str, ...]  # every file the reader needs, relative to the folder
    apt_package: str | None = None  # a Debian package that installs them under /usr/share/datasets/<name>
    download: Callable[[Path], Path] | None = None  # fetch into a folder; returns the folder holding `files`
    manual: str = ""  # where a person can get the files by hand

    def ways(self, dataset: str | None = None) -> str:
        """How to get the files, for the sweep's dataset `dataset` (default: the one named like
        the files; a variant such as cifar10-partial shares cifar10's)."""
        ways = []
        if self.apt_package:
            ways.append(f"`apt-get install {self.apt_package}`")
        how = f" ({self.manual})" if self.manual else ""
        ways.append(f"put {', '.join(self.files)}{how} in a folder and name it with ${DATA_ENV} "
                    f"or the sweep's `overrides.dataset.{dataset or self.name}.options.root`")  # fmt: skip
        if self.download is not None:
            ways.append("run once where the network allows (torchvision downloads them into the cache)")
        return " or ".join(ways)


def candidate_folders(source: Source, root: str | Path | None = None) -> list[Path]:
    folders: list[Path] = []
    for base in (root, os.environ.get(DATA_ENV) or None):
        if base:
            base = Path(base).expanduser()
            folders += [base, base / source.name]
    folders.append(SYSTEM_ROOT / source.name)
    return folders


def _holds(folder: Path, files: tuple[str, ...]) -> bool:
    return all((folder / f).is_file() for f in files)


def _why_not(root: Path, source: Source) -> str:
    if not os.path.lexists(root):
        return "does not exist"
    if not root.is_dir():
        from bench.store import _kind  # what is there instead: a FIFO, a device, a file

        mode = os.stat(root).st_mode
        return f"is {_kind(mode) if not stat.S_ISREG(mode) else 'a file'}, not a folder"
    return f"holds neither {', '.join(source.files)} nor a {source.name}/ folder with them"


def locate(source: Source, root: str | Path | None = None, dataset: str | None = None) -> Path:
    """The first folder that holds every file of `source` (see the module docstring); `dataset`
    is the sweep's name for the data set, for the error that says how to get the files."""
    tried = candidate_folders(source, root)
    for i, folder in enumerate(tried):
        if _holds(folder, source.files):
            if root and i >= 2:  # the folder the sweep named was passed over: say so, and why
                print(f"ganbench: warning: {dataset or source.name}: the given root {root} {_why_not(Path(root), source)}; "
                      f"using {folder}", file=sys.stderr)  # fmt: skip
            return folder
    note = ""
    if source.download is not None:
        target = cache_dir("downloads", source.name)
        with file_lock(target / ".lock"):
            try:
                found = source.download(target)
                if _holds(found, source.files):
                    return found
                note = f"; the download into {target} did not produce them"
            except DownloadDisabled:
                note = f"; download disabled by {DOWNLOAD_ENV}=0"
            except Exception as exc:  # no network, a mirror down, a bad checksum
                note = f"; download failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    raise UserError(
        f"{dataset or source.name}: data files not found (needs {', '.join(source.files)}); "
        f"tried {', '.join(map(str, tried))}{note}; to get them: {source.ways(dataset)}"
    )


class DownloadDisabled(Exception):
    pass


def torchvision_download(cls_name: str, subfolder: str) -> Callable[[Path], Path]:
    """A `Source.download` that uses torchvision's dataset class `cls_name`.

    `subfolder` is where torchvision leaves the files under its root (it
    keeps the .gz archives it downloads).
    """

    def download(target: Path) -> Path:
        if os.environ.get(DOWNLOAD_ENV, "1") == "0":
            raise DownloadDisabled
        found = target / subfolder
        if found.is_dir() and any(found.iterdir()):
            return found  # an earlier download
        import torchvision.datasets

        getattr(torchvision.datasets, cls_name)(root=str(target), train=True, download=True)
        return found

    return download


# -- readers -----------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_IDX_BYTES = 1 << 30  # 1 GiB decoded: EMNIST's largest split is 0.55 GB; a gzip bomb stops here


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzipped or not, as a NumPy array.

    Read in two steps: the header, then exactly the bytes it announces (at
    most MAX_IDX_BYTES), so a gzip bomb posing as IDX costs no more than that.
    """
    from bench.store import Damaged, open_regular

    path = Path(path)
    is_gzip = path.suffix == ".gz"
    try:
        with open_regular(path, 1 << 62, follow=True) as plain:  # a regular file: a FIFO would hang
            if plain is None:
                raise FileNotFoundError(2, "No such file or directory", str(path))
            handle = gzip.GzipFile(fileobj=plain, mode="rb") if is_gzip else plain
            raw = handle.read(4)
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
                raise UserError(f"{path}: not an IDX file (the magic number must be 0x0000 + a type byte + a rank byte)")
            dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
            dims = handle.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise UserError(f"{path}: IDX header cut short (rank {ndim})")
            shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4", count=ndim))
            expected = math.prod(shape) * dtype.itemsize
            if expected > MAX_IDX_BYTES:
                raise UserError(f"{path}: IDX header says shape {shape} ({expected:,} bytes), more than the "
                                f"{MAX_IDX_BYTES:,} bytes a data file may hold")  # fmt: skip
            body = handle.read(expected + 1)  # one more: a longer file is refused below
    except Damaged as exc:
        raise UserError(f"{path}: cannot read it: {exc.reason}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: cannot read it as {'gzip' if is_gzip else 'a file'} ({exc})") from None
    if len(body) != expected:
        held = f"{len(body)}" if len(body) <= expected else "more"
        raise UserError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds {held}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what the CIFAR pickles contain: dicts, lists, bytes, NumPy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the CIFAR-10 python version: (uint8 N×3×32×32, int64 labels)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a CIFAR python batch (a pickled dict with b'data' and b'labels'): {exc}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise UserError(f"{path}: expected data of shape N×3072 and N labels, got {data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32), labels


def read_h5_images(path: Path, resolution: int = 64, extra: tuple[str, ...] = ()) -> tuple[np.ndarray, ...]:
    """The CcGAN authors' HDF5 layout: `images` N×3×R×R uint8 and `labels` (N,); then each
    dataset named in `extra` that the file holds as N integers (e.g. UTKFace's `races`), else None."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            for key in ("images", "labels"):
                if key not in f:
                    raise UserError(f"{path}: has no dataset {key!r} (it has: {', '.join(f.keys()) or 'nothing'}); "
                                    f"expected the CcGAN layout `images` N×3×{resolution}×{resolution} uint8 and `labels`")  # fmt: skip
            images, labels = f["images"][:], f["labels"][:]
            others = [f[k][:] if k in f else None for k in extra]
    except OSError as exc:
        raise UserError(f"{path}: cannot read it as HDF5 ({exc})") from None
    if images.dtype != np.uint8 or images.shape[1:] != (3, resolution, resolution) or len(labels) != len(images):
        raise UserError(f"{path}: expected `images` N×3×{resolution}×{resolution} uint8 and N labels, "
                        f"got {images.dtype} {images.shape} and {len(labels)} labels")  # fmt: skip
    for key, values in zip(extra, others):
        if values is not None and (values.reshape(-1).shape != labels.reshape(-1).shape or not np.issubdtype(values.dtype, np.integer)):
            raise UserError(f"{path}: `{key}` must hold one integer class per image, got {values.dtype} {values.shape}")
    return (images, labels.astype(np.float64).reshape(-1), *[None if v is None else v.reshape(-1).astype(np.int64) for v in others])


# -- the decoded cache ---------------------------------------------------------

_memory: dict[Path, dict[str, np.ndarray]] = {}


def _stamp(sources: list[Path]) -> str:
    facts = []
    for p in sources:
        st = Path(p).stat()
        facts.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:12]


def decoded(key: str, sources: list[Path], decode: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays decoded once from `sources` and kept on disk; one mapped copy per process.

    `key` names the data set and resolution (e.g. "fashion-mnist-28px");
    the folder also carries a hash of the source files' paths, sizes and
    modification times, so new files mean a new decode, never a stale one.
    """
    folder = cache_dir("decoded") / f"{key}-{_stamp(sources)}"
    if folder in _memory:
        return _memory[folder]
    done = folder / "arrays.json"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / ".lock"):
            if not done.exists():
                arrays = decode()
                for name, array in arrays.items():
                    tmp = folder / f"{name}.tmp{os.getpid()}.npy"
                    np.save(tmp, np.ascontiguousarray(array))
                    os.replace(tmp, folder / f"{name}.npy")
                tmp = folder / f"arrays.tmp{os.getpid()}"
                tmp.write_text(json.dumps({"key": key, "sources": [str(s) for s in sources], "arrays": sorted(arrays)}))
                os.replace(tmp, done)
    names = json.loads(done.read_text())["arrays"]
    _memory[folder] = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}
    return _memory[folder]



# -- the published data sets ----------------------------------------------------

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

FASHION_MNIST = Source(
    name="fashion-mnist",
    files=IDX_FILES,
    apt_package="dataset-fashion-mnist",
    download=torchvision_download("FashionMNIST", "FashionMNIST/raw"),
    manual="from https://github.com/zalandoresearch/fashion-mnist, still gzipped",
)
MNIST = Source(
    name="mnist",
    files=IDX_FILES,
    download=torchvision_download("MNIST", "MNIST/raw"),
    manual="from https://ossci-datasets.s3.amazonaws.com/mnist/, still gzipped",
)
CIFAR10 = Source(
    name="cifar10",
    files=tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
    download=torchvision_download("CIFAR10", "cifar-10-batches-py"),
    manual="the folder cifar-10-batches-py of https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)
