"""CcGAN: continuous conditional GAN with vicinal losses. Ding et al. 2021,
"CcGAN: Continuous Conditional Generative Adversarial Networks for Image
Generation" (ICLR 2021), and the improved version (TPAMI 2023). Rows
`ccgan-hvdl` (hard vicinal discriminator loss) and `ccgan-svdl` (soft).
Read from UBCDingXin/improved_CcGAN (`Simulation/` for the circle,
`UTKFace/UTKFace_64x64/CcGAN-improved/`) and UBCDingXin/Dual-NDA
(`.../CcGAN/baseline/train_ccgan.py`, the Dual-NDA baseline).

Labels y are normalised to [0, 1] by the dataset's `label_range` (circle:
angle / 2 pi, as theirs; UTKFace: (age - 1) / 59 where they divide by 60, and
the same vicinity in years follows, since sigma and kappa scale with it).
- Rare labels are replicated first where the data set declares it
  (`replicate_to`, UTKFace: 200, their MAX_N_IMG_PER_LABEL_AFTER_REPLICA;
  Steering Angle's scripts pass 0): a label with n < 200 training images
  gets 200 - n copies drawn with replacement (`replicate_rare`, on a stream
  of the cell seed; theirs draws from numpy's global generator). sigma,
  kappa, the vicinal batches and Dual-NDA's Type I pool use the replicated
  set; the label embedding learns from the data before replication, as theirs.
- sigma = 1.06 std(y) N^(-1/5) over the N training labels (rule of thumb,
  their default `--kernel_sigma -1`; `ccgan_sigma` > 0 sets it).
- kappa_base = |kappa| * (the largest gap between neighbouring distinct
  training labels), |kappa| = `ccgan_kappa` (theirs: 2 on the circle, 1 on
  UTKFace, 5 on Steering Angle). HVDL: kappa = kappa_base, the vicinity is
  |y - t| <= kappa, weights 1. SVDL: nu = 1 / kappa_base^2, the vicinity is
  where exp(-nu (y - t)^2) >= `ccgan_soft_threshold` (their 1e-3), the
  weights are w = exp(-nu (y - t)^2).
- Each D step: targets t_j = a distinct training label drawn uniformly +
  N(0, sigma^2); a real sample drawn uniformly from the vicinity of t_j (the
  noise is drawn again for a t_j whose vicinity holds no training label,
  as theirs); a fake label uniform in the vicinity, clipped to [0, 1]; D
  sees real and fake with t_j. Loss (their "vanilla"):
  mean(w_r * -log D(x_r, t)) + mean(w_f * -log(1 - D(G(z, y_f), t))), or
  the hinge form (`ccgan_loss: hinge`, Dual-NDA's Steering Angle setting).
  On a periodic label (the circle's angle) t_j wraps into [0, 1] (their
  "only for simulation" branch); vicinities do not wrap, as theirs.
- Each G step: fresh targets as above; -log D(G(z, t), t) (hinge: -D).
- Label input: on images the improved CcGAN's ILI, c = y2h(t), the frozen
  128-d label embedding trained on the cell's own training split
  (`bench/label_embed.py`, cached by dataset, rho and seed; never the
  evaluation regressor); on 2-D points the raw label, as their simulation:
  (sin 2 pi t, cos 2 pi t) for a periodic label, else t.
- Networks: `paper_arch` is their `ccgan-mlp` for points (the circle) and
  `ccgan-sngan` for 64x64 images (bench/archs/ccgan.py).

Choices and differences (also in the report of issue 13):
- D outputs a logit and the vanilla loss is softplus on it; theirs puts a
  Sigmoid in D and takes log(D + 1e-20): equal until D saturates beyond
  |logit| ~ 46.
- Batches are drawn with torch on the device (sorted labels and
  searchsorted instead of their per-sample numpy loop): the same
  distribution, other random streams. Their D and G batches are both
  `budget.batch_size` here (their scripts set them equal).
- `ccgan_hflip` flips real images (and Dual-NDA's negatives) with p = 0.5,
  as their UTKFace and Steering Angle code does before every D pass.
- Not here: DiffAugment (color, translation, cutout), which the Dual-NDA
  authors apply to every D input of their 64x64 runs; it belongs in the
  augmentation registry (issue 12), to be named by these rows once it exists.
- Steering Angle's authors use a SAGAN network; `ccgan-sngan` (their UTKFace
  network) is the only 64x64 CcGAN network here.

compilable = False: a target whose vicinity is empty is drawn again, a loop
whose length depends on the data (as is Dual-NDA's radius growth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.label_embed import DIM_EMBED, TRUNKS, Y2H, embedding
from bench.method import Method
from bench.registry import METHODS

LOSSES = ("vanilla", "hinge")
REPLICA_TAG = 0x5250  # "RP": the random stream of the replication of rare labels


def rule_of_thumb_sigma(y: np.ndarray) -> float:
    """1.06 * std(y) * N^(-1/5) (Silverman's rule, their `kernel_sigma < 0`)."""
    return 1.06 * float(np.std(y)) * len(y) ** (-1 / 5)


def kappa_base(distinct: np.ndarray, scale: float) -> float:
    """scale * the largest gap between neighbouring distinct labels."""
    if len(distinct) < 2:
        raise ValueError(f"CcGAN's vicinity needs at least two distinct training labels, got {len(distinct)}")
    return scale * float(np.max(np.diff(np.sort(distinct))))


def replicate_rare(y: np.ndarray, to: int, seed: int) -> np.ndarray:
    """Indices into the training labels y: all of them, then, for each distinct label with n < `to`
    images, `to - n` of its indices drawn with replacement (the authors' replication of rare
    labels: improved_CcGAN UTKFace/UTKFace_64x64/CcGAN-improved/main.py:143-167, Dual-NDA
    UTKFace/.../NDA/main.py:124-148; `to` <= 1 replicates nothing, as their `> 1` test)."""
    y = np.asarray(y).reshape(len(y), -1)[:, 0]
    idx = np.arange(len(y))
    if to <= 1:
        return idx
    rng = np.random.default_rng([REPLICA_TAG, seed])
    labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    extra = [rng.choice(np.flatnonzero(inverse == k), size=to - n, replace=True) for k, n in enumerate(counts) if n < to]
    return np.concatenate([idx, *extra]) if extra else idx


def vicinity_radius(kind: str, base: float, threshold: float) -> tuple[float, float]:
    """(radius, nu): the half-width of the vicinity in normalised label units and
    the soft weight's nu (0 for the hard vicinity)."""
    if kind == "hard":
        return base, 0.0
    nu = 1.0 / base**2
    return math.sqrt(-math.log(threshold) / nu), nu


def soft_weights(y: torch.Tensor, t: torch.Tensor, nu: float) -> torch.Tensor:
    """exp(-nu (y - t)^2); ones for the hard vicinity (nu = 0)."""
    return torch.exp(-nu * (y - t) ** 2)


def in_window(sorted_y: torch.Tensor, t: torch.Tensor, radius: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(first index, count) of the sorted labels within [t - radius, t + radius]."""
    lo = torch.searchsorted(sorted_y, t - radius, side="left")
    hi = torch.searchsorted(sorted_y, t + radius, side="right")
    return lo, hi - lo


def pick(lo: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """A uniform index in [lo, lo + count) for each row (count >= 1)."""
    offset = (torch.rand(len(lo), device=lo.device) * count).long()
    return lo + torch.minimum(offset, count - 1)


def losses(kind: str):
    """(real term, fake term, generator term) of D's logit for the vanilla or hinge loss."""
    if kind == "hinge":
        return (lambda o: F.relu(1 - o)), (lambda o: F.relu(1 + o)), (lambda o: -o)
    return (lambda o: F.softplus(-o)), (lambda o: F.softplus(o)), (lambda o: F.softplus(-o))


@dataclass
class VicinalBatch:
    real: torch.Tensor  # images or points from the vicinities
    real_labels: torch.Tensor  # their normalised labels
    target: torch.Tensor  # t_j, normalised
    fake_labels: torch.Tensor  # normalised labels to generate the fakes for


class CcGAN(Method):
    paper = "Ding et al. 2021/2023, CcGAN: Continuous Conditional GANs (improved: label embedding)"
    optimizer = {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.999], "d_steps": 1}
    hp = {"ccgan_kappa": 1.0, "ccgan_sigma": 0.0, "ccgan_loss": "vanilla", "ccgan_soft_threshold": 1e-3,
          "ccgan_hflip": False, "ccgan_embed_net": "resnet34", "ccgan_embed_epochs": 200, "ccgan_y2h_epochs": 500}  # fmt: skip
    hp_choices = {"ccgan_loss": LOSSES, "ccgan_embed_net": TRUNKS}
    hp_min = {"ccgan_kappa": 1e-9, "ccgan_soft_threshold": 1e-12, "ccgan_embed_epochs": 1, "ccgan_y2h_epochs": 1}
    hp_max = {"ccgan_sigma": 1.0, "ccgan_soft_threshold": 0.999, "ccgan_embed_epochs": 10_000, "ccgan_y2h_epochs": 100_000}
    paper_arch = {"points": "ccgan-mlp", "images": "ccgan-sngan"}
    conditional = True
    compilable = False  # empty vicinities are drawn again (a data-dependent loop)
    loop_batches = False  # its vicinal batches replace the loop's (train_step): budget.sampler stays out of its ids
    vicinity: ClassVar[str]  # "hard" | "soft"

    def __init__(self, config, data_info, device, dataset=None):
        self.images = data_info["kind"] == "images"
        super().__init__(config, data_info, device, dataset=dataset)
        self.y2h = Y2H().to(device).requires_grad_(False).eval() if self.images else None
        self.facts: dict = {}
        self.real_term, self.fake_term, self.gen_term = losses(self.hp["ccgan_loss"])

    @classmethod
    def dataset_problem(cls, info):
        if info["label_type"] != "continuous":
            return f"CcGAN conditions on a continuous label; the dataset has {info['label_type']} labels (use cgan)"
        return super().dataset_problem(info)

    # -- labels ---------------------------------------------------------------
    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        lo, hi = self.data_info["label_range"]
        return ((y.double() - lo) / (hi - lo)).float()

    def label_dim(self) -> int:
        if self.data_info["kind"] == "images":
            return DIM_EMBED
        return 2 if self.data_info["periodic"] else 1

    def encode(self, t: torch.Tensor) -> torch.Tensor:
        """c for normalised labels t: the embedding on images, the raw label on points."""
        if self.y2h is not None:
            return self.y2h(t)
        if self.data_info["periodic"]:
            return torch.stack([torch.sin(2 * math.pi * t), torch.cos(2 * math.pi * t)], dim=1)
        return t[:, None]

    def label_input(self, labels: torch.Tensor) -> torch.Tensor:
        return self.encode(self.normalise(labels))

    # -- the training split -----------------------------------------------------
    def begin(self, data, fresh):
        super().begin(data, fresh)
        raw_y = self.normalise(data.y)  # the label embedding learns from the data before replication, as theirs
        idx = torch.from_numpy(replicate_rare(data.y.cpu().numpy(), self.data_info.get("replicate_to", 0), self.config["seed"]))
        x, y_units = data.x[idx.to(data.x.device)], data.y[idx.to(data.y.device)]
        y = self.normalise(y_units)
        order = torch.argsort(y)
        self.x, self.y, self.order, self.sorted_y = x, y, order, y[order]
        self.distinct = torch.unique(y)
        lo, hi = self.data_info["label_range"]
        y_np = ((y_units.double().cpu() - lo) / (hi - lo)).numpy()  # sigma and kappa in float64, as theirs
        sigma = self.hp["ccgan_sigma"] or rule_of_thumb_sigma(y_np)
        base = kappa_base(np.unique(y_np), self.hp["ccgan_kappa"])
        self.radius, self.nu = vicinity_radius(self.vicinity, base, self.hp["ccgan_soft_threshold"])
        self.sigma, self.kappa_base = sigma, base
        self.facts.update(ccgan_sigma=sigma, ccgan_kappa_base=base, ccgan_vicinity=self.vicinity, ccgan_radius=self.radius,
                          ccgan_nu=self.nu, ccgan_distinct_labels=len(self.distinct))  # fmt: skip
        if len(idx) > len(data.y):
            self.facts["ccgan_replicated"] = {"to": self.data_info["replicate_to"], "added": len(idx) - len(data.y)}
        if self.images and fresh:
            recipe = {"net": self.hp["ccgan_embed_net"], "epochs": self.hp["ccgan_embed_epochs"],
                      "y2h_epochs": self.hp["ccgan_y2h_epochs"]}  # fmt: skip
            state, facts = embedding(self.dataset, self.config["imbalance"], self.config["seed"], raw_y.cpu(), data.x,
                                     recipe, self.device)  # fmt: skip
            self.y2h.load_state_dict(state)
            self.facts["ccgan_embedding"] = facts

    def wrap(self, t: torch.Tensor) -> torch.Tensor:
        """Periodic labels wrap into [0, 1] (their simulation: t + 1 below 0, t - 1 above 1)."""
        if not self.data_info["periodic"]:
            return t
        return torch.where(t < 0, t + 1, torch.where(t > 1, t - 1, t))

    def targets(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(drawn distinct labels, targets = those + N(0, sigma^2))."""
        base = self.distinct[torch.randint(len(self.distinct), (n,), device=self.device)]
        return base, self.wrap(base + self.sigma * torch.randn(n, device=self.device))

    def vicinal_batch(self, n: int) -> VicinalBatch:
        base, t = self.targets(n)
        lo, count = in_window(self.sorted_y, t, self.radius)
        empty = count == 0
        while bool(empty.any()):  # their `while len(indx_real_in_vicinity) < 1`: draw the noise again
            t[empty] = self.wrap(base[empty] + self.sigma * torch.randn(int(empty.sum()), device=self.device))
            lo[empty], count[empty] = in_window(self.sorted_y, t[empty], self.radius)
            empty = count == 0
        idx = self.order[pick(lo, count)]
        low, high = (t - self.radius).clamp(min=0.0), (t + self.radius).clamp(max=1.0)
        fake_labels = low + (high - low) * torch.rand(n, device=self.device)
        return VicinalBatch(self.flip(self.x[idx]), self.y[idx], t, fake_labels)

    def flip(self, x: torch.Tensor) -> torch.Tensor:
        """Each image mirrored left-right with p = 0.5 (`ccgan_hflip`), else x."""
        if not self.hp["ccgan_hflip"]:
            return x
        mirror = torch.rand(len(x), device=x.device) < 0.5
        return torch.where(mirror[:, None, None, None], x.flip(3), x)

    # -- one training step ----------------------------------------------------------
    def fake_weight(self) -> torch.Tensor | float:
        """The weight of D's fake term (NDA and Dual-NDA lower it)."""
        return 1.0

    def negative_terms(self, batch: VicinalBatch, c: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra D loss terms on negative samples fed with the targets' c (NDA, Dual-NDA)."""
        return {}

    def d_step(self, batch: VicinalBatch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.G(self.latent(len(batch.target)), self.encode(batch.fake_labels))
        c = self.encode(batch.target)
        real_out, fake_out = self.D(batch.real, c), self.D(fake, c)
        terms = {
            "real": (soft_weights(batch.real_labels, batch.target, self.nu) * self.real_term(real_out)).mean(),
            "fake": self.fake_weight() * (soft_weights(batch.fake_labels, batch.target, self.nu) * self.fake_term(fake_out)).mean(),
            **self.negative_terms(batch, c),
        }
        loss = sum(terms.values())
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.d_updates += 1
        return {"d_loss": loss.detach(), **{f"d_{k}": v.detach() for k, v in terms.items()}}

    def g_step(self, n: int) -> dict[str, torch.Tensor]:
        c = self.encode(self.targets(n)[1])
        loss = self.gen_term(self.D(self.G(self.latent(n), c), c)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return {"g_loss": loss.detach()}

    def train_step(self, next_batch):
        """CcGAN draws its own batches from the vicinities (the loop's uniform batch is not used)."""
        self.step += 1
        n = self.config["budget"]["batch_size"]
        for _ in range(self.d_steps_at(self.step)):
            logs = self.d_step(self.vicinal_batch(n))
        logs.update(self.g_step(n))
        return logs

    # -- state ------------------------------------------------------------------------
    def record(self):
        return {**super().record(), **self.facts}

    def state_dict(self):
        state = {**super().state_dict(), "ccgan_facts": dict(self.facts)}
        if self.y2h is not None:
            state["y2h"] = self.y2h.state_dict()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.facts = dict(state.get("ccgan_facts", {}))
        if self.y2h is not None:
            self.y2h.load_state_dict(state["y2h"])


@METHODS.register("ccgan-hvdl")
class CcGANHVDL(CcGAN):
    paper = CcGAN.paper + ", hard vicinal discriminator loss (HVDL)"
    vicinity = "hard"


@METHODS.register("ccgan-svdl")
class CcGANSVDL(CcGAN):
    paper = CcGAN.paper + ", soft vicinal discriminator loss (SVDL)"
    vicinity = "soft"
