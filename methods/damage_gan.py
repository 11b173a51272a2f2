"""Damage GAN. Anaissi, Jia, Braytee, Naji & Alyassine 2023, "Damage GAN: A
Generative Model for Imbalanced Data" (arXiv 2312.04862): ContraD (see
`methods/contrad.py`) with the SimCLR term of its two real views replaced
by SDCLR, Jiang et al. 2021, "Self-Damaging Contrastive Learning" (ICML),
whose code (VITA-Group/SDCLR: `prune/prune_simCLR.py`, `prune/mask.py`,
`models/resnet_prune_multibn.py`) this follows.

SDCLR, as the code runs it:
- The pruned branch is D's own trunk with every convolution weight
  multiplied by a 0/1 mask (the weights are shared, nothing is copied).
- The mask is global magnitude pruning over all convolution layers of the
  trunk (`Mask.magnitudePruning`, which ranks every module that has a
  `prune_mask`): with n weights and k = ceil(p n), the
  threshold is the (k+1)-th smallest |w| and a weight is kept where
  |w| >= threshold, so exactly the n - k largest survive (ties aside).
  p = `prune_percent`, 0.9 as SDCLR runs CIFAR-10-LT (`--prune_percent 0.9`
  in `cmds/execute_hist/camera_ready.sh`). The projection head is not
  pruned.
- Which convolutions: every one of the trunk, 1x1 shortcuts included. SDCLR
  runs CIFAR-10-LT with `--model res18` (`cmds/shell_scrips/cifar-10-LT.sh`),
  i.e. `prune_resnet18_dual` (`models/resnet_prune_multibn.py`), whose
  shortcut `Downsample_multiple.conv` is `conv1x1`, a `prune_conv2d`
  (`models/resnet_prune.py`): it has a `prune_mask`, so it is ranked, and
  `BasicBlock.set_prune_flag` sets its flag, so it is masked. (The issue
  that asked for this note read the opposite; it holds only for
  `resnet32_prune_dual_s`, `models/resnet_s_cifar_prune_multibn.py`, whose
  default shortcut, option A, has no convolution, and whose option-B 1x1
  convolution is ranked but never flagged.) Linear layers are never pruned
  there (`fc`, the projection head), nor here (D's heads). On this
  harness's architectures (every `nn.Conv2d` of D.features, the trunk),
  at 32x32 (CIFAR-10): `sn-dcgan` its 7 convolutions (3x3 and 4x4
  alternating); `dcgan` and `dcgan-small` their 3 strided 4x4
  convolutions; `resnet-sngan` the 10 convolutions of its 4 blocks, 8 3x3
  and the 1x1 shortcuts of the 2 downsampling blocks (SDCLR's res18 prunes
  its shortcuts alike; tests/test_contrastive.py lists them).
- The mask is recomputed from the current weights at the start of every
  epoch, the first before any training.
- The pruned branch has its own normalization layers (`--prune_dual_bn`:
  statistics and affine parameters per branch, weights shared). ContraD's
  SN-DCGAN D (`sn-dcgan`, the paper network) and `dcgan-small` have no
  normalization in D, so this applies on `dcgan` (batch norm) and on
  plugin architectures with normalization in D.
- The contrastive term is NT-Xent(dense(v1), sg(pruned(v2))) +
  NT-Xent(sg(dense(v1)), pruned(v2)): the code runs the two as two
  backward passes into one optimizer step; here they are one backward of
  their sum, which puts the same gradients on every weight (a detached
  operand passes none). The pruned branch's normalization statistics are
  therefore updated once per step; the code's first, gradient-free pruned
  pass updates them a second time with the same batch.

The paper publishes no code and its text beyond the abstract was not
reachable here, so every choice below is ours (the issue that asked for
this row fixes the SDCLR part):
- Which terms see the pruned branch: only the real-view term above, with
  v1 and v2 ContraD's two augmented real views (v1 dense, v2 pruned, both
  through the shared first projection head, as SDCLR shares its head). The
  fakes-as-one-class term, the adversarial head and G's loss use the dense
  D, as in ContraD.
- K, the steps between masks, counts generator steps (masks made before
  steps 1, K + 1, 2K + 1, ...). `prune_every: 0` (the default) makes K one
  epoch of the cell's training set, ceil(n_train / batch_size) steps, as
  SDCLR does (with `budget.sampler: epoch`, the default, and one D step
  per generator step, those steps draw every image; with `replacement`
  it is as many steps): 25 on the CIFAR-10 rho = 100 long tail and its
  balanced partial set (12,406 images) at ContraD's batch of 512, 98 on
  the full set. `prune_every: K` fixes it.
- Spectral normalization (ContraD's D has it on every layer): the mask
  multiplies the normalized weight, W / sigma(W) with the dense weight's
  sigma, and the magnitudes ranked are those normalized weights (what the
  dense forward multiplies by; sigma differs per layer, so ranking the raw
  weights globally would prune by the layers' scales). The pruned pass
  computes W / sigma(W) like the dense one, so spectral normalization's
  power iteration runs once more per D step. Magnitudes are read with D in
  eval mode, which does not advance the power iteration.
- Everything else is ContraD's: the augmentation, the heads, temperature
  0.1, lambda 1, the warm-up, Adam(2e-4, betas 0.5, 0.999), `sn-dcgan`.
The masks are buffers of D: they are in every checkpoint and in
generator.pt (sampling needs only G; D comes along as for every row).
`record()` gives the kept fraction, the number of masks made and the
generator step of the last one.
"""

import math
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from bench.archs import BranchNorm, branch_norms
from bench.registry import METHODS, plugin_module

_contrad = plugin_module(Path(__file__).with_name("contrad.py"))
ContraD, nt_xent = _contrad.ContraD, _contrad.nt_xent


class PruneMask(nn.Module):
    """A weight parametrization: weight -> weight * mask while `active` (the pruned branch)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", torch.ones_like(weight))
        self.active = False

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask if self.active else weight


def magnitude_masks(weights: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """Global magnitude pruning (SDCLR's `magnitudePruning`): 0/1 masks keeping the
    n - ceil(fraction n) weights of largest |w| over all tensors together."""
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    n = flat.numel()
    k = min(math.ceil(fraction * n), n - 1)
    threshold = torch.kthvalue(flat, k + 1).values  # the (k+1)-th smallest
    return [(w.detach().abs() >= threshold).to(w.dtype) for w in weights]


def sdclr_loss(dense: torch.Tensor, pruned: torch.Tensor, temperature: float) -> torch.Tensor:
    """SDCLR's two terms: the dense branch learns against the pruned one's
    detached output, and the pruned branch against the dense one's."""
    return nt_xent(dense, pruned.detach(), temperature) + nt_xent(dense.detach(), pruned, temperature)


@METHODS.register("damage-gan")
class DamageGAN(ContraD):
    paper = "Anaissi et al. 2023, Damage GAN: A Generative Model for Imbalanced Data (ContraD + SDCLR)"
    hp = {**ContraD.hp, "prune_percent": 0.9, "prune_every": 0}
    hp_max = {**ContraD.hp_max, "prune_percent": 0.999}

    def __init__(self, config, data_info, device, dataset=None):
        super().__init__(config, data_info, device, dataset)
        self.pruned_layers = [(m, p) for m in self.D.features.modules() if parametrize.is_parametrized(m, "weight")
                              for p in m.parametrizations.weight if isinstance(p, PruneMask)]  # fmt: skip
        self.branch_norms = [m for m in self.D.features.modules() if isinstance(m, BranchNorm)]
        self.prune_every = self.hp["prune_every"] or self.epoch_steps()
        self.masks_made = 0
        self.mask_step = 0  # the generator step before which the current mask was made

    def build_networks(self, arch, data_info):
        G, D = super().build_networks(arch, data_info)
        D.eval()  # registering evaluates the weight: no power-iteration step for it
        for layer in [m for m in D.features.modules() if isinstance(m, nn.Conv2d)]:
            parametrize.register_parametrization(layer, "weight", PruneMask(layer.weight))
        D.train()
        branch_norms(D.features)
        return G, D

    def epoch_steps(self) -> int:
        """Generator steps in one epoch of the cell's training set."""
        if self.dataset is None:
            raise ValueError("damage-gan with prune_every 0 (once per epoch) needs the dataset to count its training set")
        n_train = len(self.dataset.train_set(self.config["imbalance"], self.config["seed"]).x)
        return math.ceil(n_train / self.config["budget"]["batch_size"])

    @contextmanager
    def pruned_branch(self):
        """D's trunk as the pruned network: masked convolutions, the second normalization copies."""
        for _, mask in self.pruned_layers:
            mask.active = True
        for norm in self.branch_norms:
            norm.branch = 1
        try:
            yield
        finally:
            for _, mask in self.pruned_layers:
                mask.active = False
            for norm in self.branch_norms:
                norm.branch = 0

    @torch.no_grad()
    def update_masks(self) -> None:
        was_training = self.D.training
        self.D.eval()  # read W / sigma(W) without a power-iteration step
        weights = [layer.weight for layer, _ in self.pruned_layers]
        self.D.train(was_training)
        for (_, mask), new in zip(self.pruned_layers, magnitude_masks(weights, self.hp["prune_percent"])):
            mask.mask.copy_(new)
        self.masks_made += 1
        self.mask_step = self.step + 1

    def real_views_term(self, views, features, n):
        dense = self.project("simclr", features[:n])
        with self.pruned_branch():
            pruned = self.project("simclr", self.D.features(views[n : 2 * n]))
        return "sdclr", sdclr_loss(dense, pruned, self.hp["temperature"])

    def train_step(self, next_batch):
        if self.step % self.prune_every == 0:  # before generator steps 1, K + 1, 2K + 1, ...
            self.update_masks()
        return super().train_step(next_batch)

    def record(self):
        kept = sum(mask.mask.sum().item() for _, mask in self.pruned_layers)
        total = sum(mask.mask.numel() for _, mask in self.pruned_layers)
        return {**super().record(), "prune_kept": kept / total, "prune_masks_made": self.masks_made,
                "prune_mask_step": self.mask_step, "prune_every_steps": self.prune_every, "prune_layers": len(self.pruned_layers)}  # fmt: skip

    def state_dict(self):
        return {**super().state_dict(), "masks_made": self.masks_made, "mask_step": self.mask_step}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.masks_made, self.mask_step = state["masks_made"], state["mask_step"]
