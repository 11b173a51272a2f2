"""clean-fid's own Fréchet distance, runnable on any SciPy: the reference our
bench.metrics.frechet is checked against.

clean-fid 0.1.35 calls `scipy.linalg.sqrtm(..., disp=False)`: deprecated in
SciPy 1.16 (a DeprecationWarning, an error in our test run) and gone in
1.18. While it runs, `sqrtm` is replaced by the SciPy < 1.16 signature on
top of the installed root (or by `root`, to emulate other behaviours)."""

import warnings
from contextlib import contextmanager

import numpy as np
import scipy.linalg

INSTALLED_SQRTM = scipy.linalg.sqrtm


@contextmanager
def old_sqrtm_signature(root=INSTALLED_SQRTM):
    def sqrtm(A, disp=True, blocksize=64):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # SciPy >= 1.16 on singular products
            out = root(A)
        return out if disp else (out, 0.0)

    scipy.linalg.sqrtm = sqrtm
    try:
        yield
    finally:
        scipy.linalg.sqrtm = INSTALLED_SQRTM


def cleanfid_fid(a: np.ndarray, b: np.ndarray, root=INSTALLED_SQRTM) -> float:
    """cleanfid.fid.fid_from_feats(a, b), with `root` as the matrix square root."""
    from cleanfid.fid import fid_from_feats

    with old_sqrtm_signature(root):
        return float(fid_from_feats(a, b))
