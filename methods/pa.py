"""Progressive augmentation (add-on `pa`). Zhang & Khoreva 2019,
"Progressive Augmentation of GANs" (NeurIPS), input-space augmentation.

D's input gets L_max extra constant channels (extra coordinates for 2-D
points) holding random bits s in {0,1}^L_max; bits beyond the current level
are 0. D's target is flipped, for real and fake samples alike, when the XOR
(parity) of the bits is 1; G's target flips with it. The kernel weights of
the bit channels start at zero (they get no gradient until their bit is
active, as the masked kernels of the reference ops). The level (0 at the
start) grows by one, up to `pa_max_level` (4), when the progress signal
stops improving: every `pa_every` steps a pixel-space KID between
`pa_holdout` generated samples (fixed latents) and a held-out real batch is
computed, and a bit is added after `pa_patience` checks without a new best.

Choices the paper leaves open or that the harness forces:
- The flip is written as a map of D's output, so any base with a declared
  `target_flip` works with its own unchanged losses: for BCE, hinge and
  critics flipping the target of a sample equals negating its output; for
  LSGAN's 0-1 coding it equals out -> 1 - out. Gradient penalties are
  unaffected (the flip does not change the gradient norm).
- The held-out real batch: the method's contract only sees `next_batch`, so
  on its first step PA draws `pa_holdout` real samples from it and keeps
  them aside (in the checkpoint too). They are drawn from the training set,
  not from an unseen split: a fixed real batch, not a test set.
- The proxy is KID with the cubic polynomial kernel on raw pixels (or
  coordinates), unbiased MMD^2: cheap and fixed (the paper used FID on
  Inception features, which would cost minutes per check on a CPU).
- No fade-in: a new bit becomes active at once (as in the reference ops).
- Samplers and feature regularizers (`drs`, `adaptivemix`) see D on clean
  inputs: all bits 0, which is D without augmentation.
Applies to every base that declares `target_flip` (gan, lsgan, cn-lsgan,
sngan, wgan, wgan-gp). `record()` gives the final level and the steps at
which levels were added.
"""

import torch
from torch import nn

from bench.method import FLIPS, AddOn
from bench.registry import ADDONS


@ADDONS.register("pa")
class ProgressiveAugmentation(AddOn):
    paper = "Zhang & Khoreva 2019, Progressive Augmentation of GANs"
    hp = {"pa_max_level": 4, "pa_every": 100, "pa_patience": 2, "pa_holdout": 256}
    hp_min = {"pa_max_level": 1, "pa_every": 1, "pa_patience": 1, "pa_holdout": 2}
    hp_max = {"pa_max_level": 64, "pa_holdout": 65_536}  # D's extra input channels; real samples kept aside (batch_size's bound)

    @classmethod
    def refuses(cls, base):
        if base.target_flip not in FLIPS:
            return f"{base.name} does not declare how to flip D's target (target_flip)"
        return None

    def __init__(self, config, data_info, device):
        super().__init__(config, data_info, device)
        self.pa_level = 0
        self.pa_level_steps: list[int] = []
        self.pa_best = float("inf")
        self.pa_bad_checks = 0
        self.pa_holdout: torch.Tensor | None = None
        self.pa_proxy: list[tuple[int, float]] = []

    def build_pair(self, arch, data_info):
        G, D = super().build_pair(arch, data_info)
        widen_first_layer(D, self.hp["pa_max_level"])
        return G, D

    # -- what D sees ------------------------------------------------------------
    def random_bits(self, n: int) -> torch.Tensor:
        bits = torch.zeros(n, self.hp["pa_max_level"], device=self.device)
        if self.pa_level:
            bits[:, : self.pa_level] = torch.randint(0, 2, (n, self.pa_level), device=self.device).float()
        return bits

    def discriminate(self, x):
        bits = self.random_bits(len(x))
        out = super().discriminate(with_bits(x, bits))
        odd = bits.sum(1).remainder(2).bool()
        return torch.where(odd, FLIPS[self.target_flip](out), out)

    def d_features(self, x):
        return super().d_features(with_bits(x, torch.zeros(len(x), self.hp["pa_max_level"], device=x.device)))

    # -- the schedule -----------------------------------------------------------
    def train_step(self, next_batch):
        if self.pa_holdout is None:
            parts, n = [], 0
            while n < self.hp["pa_holdout"]:
                parts.append(next_batch()[0])
                n += len(parts[-1])
            self.pa_holdout = torch.cat(parts)[: self.hp["pa_holdout"]].clone()
        logs = super().train_step(next_batch)
        if self.step % self.hp["pa_every"] == 0:
            self.check_progress(self.proxy_score())
        logs["pa_level"] = float(self.pa_level)
        return logs

    @torch.no_grad()
    def proxy_score(self) -> float:
        generator = torch.Generator(device=self.device).manual_seed(self.config["seed"] + 7919)
        was_training = self.G.training
        self.G.eval()
        fake = self.G(self.latent(len(self.pa_holdout), generator))
        self.G.train(was_training)
        return kid(fake.flatten(1).double(), self.pa_holdout.flatten(1).double())

    def check_progress(self, score: float) -> None:
        """One check of the progress signal: add a bit after `pa_patience` checks without a new best."""
        self.pa_proxy.append((self.step, score))
        if score < self.pa_best:
            self.pa_best, self.pa_bad_checks = score, 0
            return
        self.pa_bad_checks += 1
        if self.pa_bad_checks >= self.hp["pa_patience"] and self.pa_level < self.hp["pa_max_level"]:
            self.pa_level += 1
            self.pa_level_steps.append(self.step)
            self.pa_bad_checks = 0

    def record(self):
        return {**super().record(), "pa_level": self.pa_level, "pa_level_steps": list(self.pa_level_steps),
                "pa_proxy": [[s, round(v, 6)] for s, v in self.pa_proxy]}  # fmt: skip

    def state_dict(self):
        state = {"level": self.pa_level, "level_steps": list(self.pa_level_steps), "best": self.pa_best,
                 "bad_checks": self.pa_bad_checks, "holdout": self.pa_holdout, "proxy": list(self.pa_proxy)}  # fmt: skip
        return {**super().state_dict(), "pa": state}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        pa = state["pa"]
        self.pa_level, self.pa_level_steps, self.pa_best = pa["level"], list(pa["level_steps"]), pa["best"]
        self.pa_bad_checks, self.pa_proxy = pa["bad_checks"], [tuple(p) for p in pa["proxy"]]
        self.pa_holdout = None if pa["holdout"] is None else pa["holdout"].to(self.device)


def with_bits(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """x with the bits appended: as constant channels for images, as coordinates for points."""
    if x.dim() == 4:
        bits = bits[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    return torch.cat([x, bits.to(x.dtype)], dim=1)


def widen_first_layer(D: nn.Module, extra: int) -> None:
    """Give D's first Linear/Conv2d (depth first, in call order) `extra` more
    inputs whose weights start at zero."""
    if not _widen(D, extra):
        raise ValueError("progressive augmentation needs a discriminator whose first layer is Linear or Conv2d")


def _widen(module: nn.Module, extra: int) -> bool:
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            setattr(module, name, _widened(child, extra))
            return True
        if _widen(child, extra):
            return True
    return False


def _widened(layer: nn.Module, extra: int) -> nn.Module:
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features + extra, layer.out_features, bias=layer.bias is not None)
    else:
        new = nn.Conv2d(layer.in_channels + extra, layer.out_channels, layer.kernel_size, layer.stride,
                        layer.padding, bias=layer.bias is not None)  # fmt: skip
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : layer.weight.shape[1]] = layer.weight
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    return new


def kid(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (the KID kernel), on (n, d) rows."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3), ((y @ y.T / d + 1) ** 3), ((x @ y.T / d + 1) ** 3)
    m, n = len(x), len(y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
                 - 2 * kxy.mean())  # fmt: skip
