"""Steering angle at 64x64, from the CcGAN authors' HDF5 file.

The file SteeringAngle_64x64.h5 (Ding et al. 2021, "CcGAN"; frames of a
driving video with the steering wheel angle in degrees) holds `images`
N×3×64×64 uint8 and `labels`. Imbalance: an image at angle a is kept with
probability rho ** (-(a + 80) / 160).

The Dual-NDA authors' protocol (UBCDingXin/Dual-NDA,
`SteeringAngle/SteeringAngle_64x64/CcGAN/NDA/main.py`, `opts.py`), revision 1:
- angles on the open interval -80 < a < 80 are kept (main.py:68); the
  reference is all of those real images;
- evaluation asks for linspace(min, max, 2,000) of those angles (main.py:407,
  `--num_eval_labels 2000`);
- SFID, Diversity and NIQE use 1,000 windows |a - c| <= 2 with centres on
  linspace(min + 2, max - 2, 1000) (main.py:475-477, opts.py:98-99 `FID_radius 2`,
  `FID_num_centers 1000`; NIQE/SteeringAngle/NIQE_64x64/imgs_to_groups_fake.py:25,61-65);
- NIQE: one MATLAB model of the whole data set, 8x8 blocks, sharpness
  threshold 0.1, on the native 64x64 images (improved_CcGAN
  NIQE/SteeringAngle/NIQE_64x64/niqe_train_steeringangle.m:4,16);
- no replication of rare angles: their scripts pass
  `--max_num_img_per_label_after_replica 0` (run_dual.sh:18, run_gene.sh:18).
- Diversity: the entropy of the predicted scene (5 classes); the scene
  classifier trains on another file, SteeringAngle_5_scenes_64x64.h5
  (`images`, `labels`: improved_CcGAN SteeringAngle/SteeringAngle_64x64/
  CcGAN-improved/pretrain_CNN_class.py:85-88), read from the same folder when
  it is there (`aux_file`); without it `diversity` is NaN with the reason.
"""

import numpy as np

from bench import niqe
from bench.data import CcganH5Dataset
from bench.datafiles import Source
from bench.registry import DATASETS

WINDOW_RADIUS = 2.0  # degrees, their FID_radius
WINDOWS = 1000  # their FID_num_centers
EVAL_LABELS = 2000  # their num_eval_labels


@DATASETS.register("steering-angle")
class SteeringAngle(CcganH5Dataset):
    source = Source(
        name="steering-angle",
        files=("SteeringAngle_64x64.h5",),
        manual="the 64x64 HDF5 file published with the CcGAN code, https://github.com/UBCDingXin/improved_CcGAN",
    )
    resolution = 64
    label_range = (-80.0, 80.0)
    open_range = True
    window_radius = WINDOW_RADIUS
    aux_file = "SteeringAngle_5_scenes_64x64.h5"
    niqe = niqe.AUTHORS_64
    revision = 1  # open interval, evaluation labels and windows from the data, the authors' NIQE
    description = "Steering angle 64x64 driving frames, label = angle in degrees (-80, 80) (CcGAN's HDF5 file)"
    reference_split = "all real images with angles in (-80, 80) (the CcGAN protocol)"

    def eval_labels(self) -> np.ndarray:
        y = self.data_labels()
        return np.linspace(y.min(), y.max(), EVAL_LABELS)

    def window_centres(self) -> np.ndarray:
        y = self.data_labels()
        return np.linspace(y.min() + WINDOW_RADIUS, y.max() - WINDOW_RADIUS, WINDOWS)
