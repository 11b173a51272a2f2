"""Steering angle at 64x64, from the CcGAN authors' HDF5 file.

The file SteeringAngle_64x64.h5 (Ding et al. 2021, "CcGAN"; frames of a
driving video with the steering wheel angle in degrees) holds `images`
N×3×64×64 uint8 and `labels`. As in CcGAN, angles in [-80, 80] are kept
and evaluation runs against all those real images, at 2,000 evenly spaced
angles. Imbalance: an image at angle a is kept with probability
rho ** (-(a + 80) / 160).
"""

import numpy as np

from bench.data import CcganH5Dataset
from bench.datafiles import Source
from bench.registry import DATASETS


@DATASETS.register("steering-angle")
class SteeringAngle(CcganH5Dataset):
    source = Source(
        name="steering-angle",
        files=("SteeringAngle_64x64.h5",),
        manual="the 64x64 HDF5 file published with the CcGAN code, https://github.com/UBCDingXin/improved_CcGAN",
    )
    resolution = 64
    label_range = (-80.0, 80.0)
    description = "Steering angle 64x64 driving frames, label = angle in degrees [-80, 80] (CcGAN's HDF5 file)"
    reference_split = "all real images with angles in [-80, 80] (the CcGAN protocol)"

    def eval_labels(self) -> np.ndarray:
        return np.linspace(-80.0, 80.0, 2000)
