"""UTKFace at 64x64 with age labels, from the CcGAN authors' HDF5 file.

The file UTKFace_64x64.h5 (Ding et al. 2021, "CcGAN"; published with their
code) holds `images` N×3×64×64 uint8, `labels` (age in years) and `races`
(5 classes, the auxiliary class of the Diversity score). As in CcGAN, ages
1 to 60 are kept and evaluation runs against all those real images.
Imbalance: an image of age a is kept with probability rho ** (-(a - 1) / 59):
young ages stay dense, age 60 is rho times sparser.

The Dual-NDA authors' protocol (UBCDingXin/Dual-NDA,
`UTKFace/UTKFace_64x64/CcGAN/NDA/main.py`, `scripts/run_dual.sh`), revision 1:
- ages with fewer than 200 training images are topped up to 200 by
  replication before sigma and kappa (main.py:124-148, run_dual.sh:18;
  improved_CcGAN UTKFace/UTKFace_64x64/CcGAN-improved/main.py:143-167);
  done by the CcGAN rows (methods/ccgan.py);
- evaluation at the ages 1..60, windows of radius 0 (one age each,
  `--FID_radius 0`, main.py:467-477);
- NIQE: one MATLAB model per age, 8x8 blocks, sharpness threshold 0.1,
  native 64x64 (improved_CcGAN NIQE/UTKFace/NIQE_64x64/Intra_niqe_train_utkface.m);
- Diversity: the entropy of the predicted race (`races` of the file,
  main.py:385-389).
Not here: their cap of 2,000 images per age (`MAX_N_IMG_PER_LABEL=2000`).
"""

import numpy as np

from bench import niqe
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
    aux_key = "races"
    window_radius = 0.0
    replicate_to = 200
    niqe = niqe.AUTHORS_64_PER_LABEL
    revision = 1  # replication to 200 a age, windows of one age, the authors' NIQE, races for Diversity
    description = "UTKFace 64x64 faces, label = age 1..60 (CcGAN's HDF5 file)"
    reference_split = "all real images of ages 1..60 (the CcGAN protocol)"

    def eval_labels(self) -> np.ndarray:
        return np.arange(1.0, 61.0)
