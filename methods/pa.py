"""Progressive augmentation (add-on `pa`). Zhang & Khoreva 2019,
"Progressive Augmentation of GANs" (NeurIPS); the authors' ops are
boschresearch/PA-GAN `pagan_ops.py` (TensorFlow).

Augmentation: a chosen layer of D (`pa_place`: 0 = D's input layer, the
paper's input-space PA; k = D's k-th convolution or linear layer of the
feature extractor, in registration order: feature-space PA) gets
`pa_max_level` extra input channels (extra inputs for linear layers)
holding random bits s in {0,1}, constant over height and width; bits beyond
the current level are 0. Their kernel weights start at zero, as the
reference `pa_conv2d` initialises and masks them. D's target is flipped,
for real and fake samples alike, when the checksum (parity) of the bits is
1; G's target flips with it.

Schedule, as the paper states it (Sec. "Progression scheduling" and the
training details of the ICLR 2019 submission, the text reachable here;
the reference repository holds only the ops):
- the progress signal is KID between generated samples and samples drawn
  from the training set (Binkowski et al. 2018), on Inception features in
  the paper; here on the evaluation classifier's features by default
  (`pa_features: classifier`, bench.metrics.evalnet, cached per dataset)
  or Inception's (`inception`, the paper's, GPU budgets). Never pixels;
- it is computed every `pa_every` steps (the paper: every 10^4
  discriminator iterations, with 10k generated and 10k training samples,
  `pa_kid_samples`);
- "if the current KID score is less than 5% of the average of the two
  previous ones attained at the same augmentation level, the augmentation
  is leveled up": the level grows by one when the KID has not improved by
  the relative margin `pa_margin` = 0.05 on the mean of the last
  `pa_window` = 2 checks made at the current level, i.e. when
  kid > mean - 0.05 |mean| (|mean|: a KID estimate can be negative);
- minimum spacing: the checks that count are those at the current level,
  so a level needs `pa_window` + 1 checks of its own before the next one:
  levels are at least (pa_window + 1) * pa_every steps apart.

Where the sources stop, and what this file does:
- The paper's draft (ICLR 2019 submission) also fades a new bit in
  (P(s = 1) growing linearly to 1/2 over t_r = 5k iterations) and resets
  the Adam time step of G at a new level. The released ops draw every
  active bit uniformly and have no such step; neither is done here.
- `pa_every` counts generator steps; the paper counts discriminator
  iterations (the same with one D step per G step, its setting).
- The real side is a fixed draw of `pa_kid_samples` training samples (seed:
  the cell's), the generated side a fixed set of latents, G in eval mode:
  the checks differ only through G. KID: clean-fid's `kernel_distance`
  (bench.metrics.fid_kid.seeded_kid: subsets of 1,000, averaged over 100);
  with 1,000 samples or fewer every subset holds all of them, and the one
  unbiased estimate is computed directly.
- 2-D points have no evaluation network: their KID is on the coordinates
  themselves (the points are their own feature space; no pixels involved).
- The flip is written as a map of D's output, so any base with a declared
  `target_flip` works with its own unchanged losses (BCE, hinge, critics:
  out -> -out; LSGAN's 0-1 coding: out -> 1 - out). Gradient penalties see
  fresh bits and are unaffected by the flip.
- Samplers, feature regularizers and DRS calibration see D with all bits 0
  (D without augmentation); AdaptiveMix's three feature passes of a batch
  share one draw of bits per sample, so its mixed output flips as a whole.
`record()` gives the final level, the steps at which levels were added and
the KID history [step, level, kid].
"""

import numpy as np
import torch
from torch import nn

from bench.archs import weight_layers
from bench.method import FLIPS, AddOn
from bench.registry import ADDONS

FAKE_SEED_OFFSET = 7919  # the fixed latents of the progress check: seeded by the cell seed + this


@ADDONS.register("pa")
class ProgressiveAugmentation(AddOn):
    paper = "Zhang & Khoreva 2019, Progressive Augmentation of GANs"
    hp = {"pa_max_level": 7, "pa_every": 10000, "pa_margin": 0.05, "pa_window": 2, "pa_kid_samples": 10000,
          "pa_features": "classifier", "pa_place": 0}  # fmt: skip
    hp_choices = {"pa_features": ("classifier", "inception")}
    hp_min = {"pa_max_level": 1, "pa_every": 1, "pa_window": 1, "pa_kid_samples": 2}
    hp_max = {"pa_margin": 1, "pa_max_level": 64, "pa_kid_samples": 100_000}  # D's extra input channels; KID samples (eval_samples' bound)

    @classmethod
    def refuses(cls, base):
        reason = super().refuses(base)
        if reason is None and base.target_flip not in FLIPS:
            return f"{base.name} does not declare how to flip D's target (target_flip)"
        return reason

    @classmethod
    def arch_problems(cls, arch, data_info, hp):
        problems = super().arch_problems(arch, data_info, hp)
        from bench.archs import build_pair

        with torch.device("meta"):  # counts layers without allocating the networks
            n = len(weight_layers(build_pair(arch, data_info)[1].features))
        if hp["pa_place"] >= n:
            problems.append(("pa_place", f"must be below {n}, the number of convolution/linear layers in "
                                         f"{arch['name']!r}'s discriminator features, got {hp['pa_place']}"))  # fmt: skip
        return problems

    def __init__(self, config, data_info, device, dataset=None):
        super().__init__(config, data_info, device, dataset)
        self.pa_level = 0
        self.pa_level_steps: list[int] = []
        self.pa_kid: list[list] = []  # [step, level at the check, kid]
        self._pa_real: np.ndarray | None = None  # features of the fixed real draw (recomputed after a resume)

    def build_pair(self, arch, data_info):
        G, D = super().build_pair(arch, data_info)
        layers = weight_layers(D.features)
        if self.hp["pa_place"] >= len(layers):
            raise ValueError(f"pa_place {self.hp['pa_place']} is not below the {len(layers)} layers of D's features")
        parent, name, layer = layers[self.hp["pa_place"]]
        setattr(parent, name, BitsInput(layer, self.hp["pa_max_level"]))
        return G, D

    def bits_input(self) -> "BitsInput":
        return next(m for m in self.D.modules() if isinstance(m, BitsInput))

    # -- what D sees ------------------------------------------------------------
    def random_bits(self, n: int) -> torch.Tensor:
        bits = torch.zeros(n, self.hp["pa_max_level"], device=self.device)
        if self.pa_level:
            bits[:, : self.pa_level] = torch.randint(0, 2, (n, self.pa_level), device=self.device).float()
        return bits

    def discriminate(self, x):
        bits, slot = self.random_bits(len(x)), self.bits_input()
        slot.bits = bits
        try:
            out = super().discriminate(x)
        finally:
            slot.bits = None
        odd = bits.sum(1).remainder(2).bool()
        return torch.where(odd, FLIPS[self.target_flip](out), out)

    # -- the schedule -----------------------------------------------------------
    def train_step(self, next_batch):
        logs = super().train_step(next_batch)
        if self.step % self.hp["pa_every"] == 0:
            logs["pa_kid"] = self.check_progress(self.progress_kid())
        logs["pa_level"] = float(self.pa_level)
        return logs

    def check_progress(self, kid: float) -> float:
        """Record one check and add a level when the KID has not improved by the margin."""
        self.pa_kid.append([self.step, self.pa_level, kid])
        at_level = [k for _, level, k in self.pa_kid if level == self.pa_level]
        window = self.hp["pa_window"]
        if len(at_level) > window and self.pa_level < self.hp["pa_max_level"]:
            previous = sum(at_level[-window - 1 : -1]) / window
            if previous - kid < self.hp["pa_margin"] * abs(previous):
                self.pa_level += 1
                self.pa_level_steps.append(self.step)
        return kid

    @torch.no_grad()
    def progress_kid(self) -> float:
        if self._pa_real is None:
            self._pa_real = self.progress_features(self.real_draw())
        generator = torch.Generator(device=self.device).manual_seed(self.config["seed"] + FAKE_SEED_OFFSET)
        was_training = self.G.training
        self.G.eval()
        n, chunks = self.hp["pa_kid_samples"], []
        for i in range(0, n, 500):
            chunks.append(self.G(self.latent(min(500, n - i), generator)).cpu())
        self.G.train(was_training)
        return kid(self._pa_real, self.progress_features(torch.cat(chunks)))

    def real_draw(self) -> torch.Tensor:
        if self.dataset is None:
            raise RuntimeError("PA's progress KID draws from the training set: build the method with dataset=")
        x = self.dataset.train_set(self.config["imbalance"], self.config["seed"]).x
        generator = torch.Generator().manual_seed(self.config["seed"])
        return x[torch.randperm(len(x), generator=generator)[: self.hp["pa_kid_samples"]]]

    def progress_features(self, x: torch.Tensor) -> np.ndarray:
        """The feature space of the progress KID: the evaluation classifier's, Inception's, or 2-D coordinates."""
        if self.data_info["kind"] != "images":
            return x.double().numpy()
        if self.hp["pa_features"] == "inception":
            from bench.metrics.inception import inception_features

            return inception_features(x, self.device).astype(np.float64)
        from bench.metrics.evalnet import get_classifier

        with torch.enable_grad():  # the first call may train the classifier; progress_kid runs under no_grad
            net = get_classifier(self.dataset)
        return net.features_and_logits(x)[0].double().numpy()

    def record(self):
        space = "coordinates" if self.data_info["kind"] != "images" else self.hp["pa_features"]
        return {**super().record(), "pa_level": self.pa_level, "pa_level_steps": list(self.pa_level_steps),
                "pa_kid": [[s, level, round(k, 8)] for s, level, k in self.pa_kid], "pa_kid_features": space}  # fmt: skip

    def state_dict(self):
        state = {"level": self.pa_level, "level_steps": list(self.pa_level_steps), "kid": [list(c) for c in self.pa_kid]}
        return {**super().state_dict(), "pa": state}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        pa = state["pa"]
        self.pa_level, self.pa_level_steps, self.pa_kid = pa["level"], list(pa["level_steps"]), [list(c) for c in pa["kid"]]


class BitsInput(nn.Module):
    """A Linear/Conv2d layer whose input gets `n_bits` extra channels: the
    bits set for the current D pass (`bits`, (N, n_bits)), zeros otherwise.
    The added kernel weights start at zero."""

    def __init__(self, layer: nn.Module, n_bits: int):
        super().__init__()
        self.layer = widened(layer, n_bits)
        self.n_bits = n_bits
        self.bits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bits = self.bits if self.bits is not None else x.new_zeros(len(x), self.n_bits)
        if x.dim() == 4:
            bits = bits[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.layer(torch.cat([x, bits.to(x.dtype)], dim=1))


def widened(layer: nn.Module, extra: int) -> nn.Module:
    """A copy of `layer` with `extra` more inputs whose weights are zero."""
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features + extra, layer.out_features, bias=layer.bias is not None)
    else:
        new = nn.Conv2d(layer.in_channels + extra, layer.out_channels, layer.kernel_size, layer.stride,
                        layer.padding, bias=layer.bias is not None)  # fmt: skip
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : layer.weight.shape[1]] = layer.weight
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    return new


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    """KID between two (n, d) feature sets, as clean-fid computes it."""
    if min(len(real), len(fake)) > 1000:
        from bench.metrics.fid_kid import seeded_kid

        return seeded_kid(real, fake)
    return unbiased_mmd2(real, fake)


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (the KID kernel)."""
    d = x.shape[1]
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())
