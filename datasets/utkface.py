"""UTKFace at 64x64 with age labels, from the CcGAN authors' HDF5 file.

The file UTKFace_64x64.h5 (Ding et al. 2021, "CcGAN"; published with their
code) holds `images` N×3×64×64 uint8 and `labels` (age in years). As in
CcGAN, ages 1 to 60 are kept and evaluation runs against all those real
images. Imbalance: an image of age a is kept with probability
rho ** (-(a - 1) / 59): young ages stay dense, age 60 is rho times sparser.
"""

import numpy as np

from bench.data import CcganH5Dataset
from bench.datafiles import Source
from bench.registry import DATASETS


@DATASETS.register("utkface")
class UTKFace(CcganH5Dataset):
    source = Source(
        name="utkface",
        files=("UTKFace_64x64.h5",),
        manual="the 64x64 HDF5 file published with the CcGAN code, https://github.com/UBCDingXin/improved_CcGAN",
    )
    resolution = 64
    label_range = (1.0, 60.0)
    description = "UTKFace 64x64 faces, label = age 1..60 (CcGAN's HDF5 file)"
    reference_split = "all real images of ages 1..60 (the CcGAN protocol)"

    def eval_labels(self) -> np.ndarray:
        return np.arange(1.0, 61.0)
