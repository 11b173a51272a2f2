"""ContraD. Jeong & Shin 2021, "Training GANs with Stronger Augmentations via
Contrastive Discriminator" (ICLR), as the authors' code runs it
(jh-jeong/ContraD: `training/gan/contrad.py`, `training/criterion.py`,
`models/gan/base.py`, `train_gan.py`, `configs/`).

D is a feature trunk F (the architecture's `D.features`) with three heads:
a real/fake head h and two projection MLPs p1, p2. Each D step:
- x = augment(cat[real, real, fake]) (3N images, the `simclr` augmentation
  of bench.augment, differentiable and on the device), f = F(x);
- NT-Xent (temperature 0.1) between the two real views on p1;
- lambda (`fake_weight`, 1) x the supervised contrastive loss that treats
  the fakes as one class, on p2: each fake is an anchor, the other fakes its
  positives (their log-probabilities averaged), and its denominator every
  other sample of the 3N;
- the non-saturating GAN loss on h(sg(f)): the adversarial loss trains only
  the head, the trunk learns from the contrastive terms alone.
G minimises softplus(-h(F(augment(G(z))))): G is trained through the
augmentation, the trunk and the head.

Where the authors' code differs from the issue that asked for this row:
- The real/fake head is a one-hidden-layer MLP, d -> 512 -> 1 with
  LeakyReLU(0.1) (`mlp_linear=True`, `d_hidden=512`, in every
  configuration the code builds), not a linear layer.
- The projection MLPs are d -> 512 -> 128, not d -> 128 -> 128: `d_hidden`
  (512 for the SN-DCGAN D; 1,024 for their SNResNet-18) sets the hidden
  width of the projections too. `hidden` and `proj_dim` set them here.

Settings read from the code (CIFAR-10, `EXPERIMENTS.md`: `c10_b512.gin
sndcgan --mode=contrad --aug=simclr --use_warmup`): batch 512 (a sweep's
`budget.batch_size`), 200,000 generator steps, Adam(2e-4, 2e-4, betas 0.5,
0.999), one D step per G step, the learning rates of both optimizers
warmed up linearly over the first 3,000 steps (lr x min(1, (t + 1) /
3000) at step t = 1, 2, ...; `warmup`, 0 turns it off), temperature 0.1,
lambda 1, G's prior U(-1, 1)^128. Spectral normalization on every layer of
D, the heads included (the code wraps every Linear and Conv2d of D).
`paper_arch` is `sn-dcgan` (their `sndcgan`: the same network, the heads
on its flattened 4 x 4 x 512 features). Heads are initialised N(0, 0.02)
with zero biases, as the code's SN-DCGAN resets every layer.

Choices where the code is silent or cannot apply here:
- `batch_size` 1 has no other fake to contrast with: the fake term is 0.
- The augmentation's random draws come from a generator of the method's
  own (seeded by the cell seed, checkpointed), not the global one.
- Add-ons: a prior (gm), a sampler (drs) and loss terms (`d_terms` /
  `g_terms`: icr) compose; `pa` refuses (no declared target flip: the
  adversarial loss is not D's only output); `adaptivemix` and `pacgan` are
  refused (their hook, `d_forward`, is not how these steps call D).
The method is for images: the augmentation crops, flips and colours them.
"""

import torch
import torch.nn.functional as F
from torch import nn

from bench.archs.layers import normal_init
from bench.augment import AUGMENTS, generator_for
from bench.method import Method
from bench.registry import METHODS

# A finite stand-in for -inf on the similarity diagonal (the code's value): a
# 0 x -inf product in the masked sums would be NaN.
SELF_SIMILARITY = -5e4


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent between unit-norm rows a_i and b_i (positive pairs):
    mean over the 2N samples of -log softmax(similarities / t) at the pair,
    the softmax over every sample but itself."""
    n = len(a)
    out = torch.cat([a, b])
    sim = (out @ out.T / temperature).fill_diagonal_(SELF_SIMILARITY)
    log_prob = F.log_softmax(sim, dim=1)
    rows = torch.arange(2 * n, device=out.device)
    return -log_prob[rows, (rows + n) % (2 * n)].mean()


def supcon_fake(real1: torch.Tensor, real2: torch.Tensor, fake: torch.Tensor, temperature: float) -> torch.Tensor:
    """ContraD's fake term: each fake (unit-norm rows) is an anchor whose
    positives are the other fakes; -mean over positives of log softmax over
    all 3N samples but itself, averaged over the anchors."""
    n = len(fake)
    out = torch.cat([real1, real2, fake])
    sim = (out[2 * n :] @ out.T / temperature).clone()
    rows = torch.arange(n, device=out.device)
    sim[rows, 2 * n + rows] = SELF_SIMILARITY
    log_prob = F.log_softmax(sim, dim=1)
    positives = torch.zeros_like(sim)
    positives[:, 2 * n :] = 1.0
    positives[rows, 2 * n + rows] = 0.0
    positives = positives / positives.sum(1, keepdim=True).clamp(min=1.0)
    return -(log_prob * positives).sum(1).mean()


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Module:
    head = nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, d_out))
    normal_init(head)
    return head


@METHODS.register("contrad")
class ContraD(Method):
    paper = "Jeong & Shin 2021, Training GANs with Stronger Augmentations via Contrastive Discriminator (ContraD)"
    optimizer = {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999], "d_steps": 1}
    hp = {"augment": "simclr", "temperature": 0.1, "fake_weight": 1.0, "warmup": 3000, "hidden": 512, "proj_dim": 128}
    # Its own d_step/g_step/train_step (three-view batches, warm-up learning rates) do not go through
    # d_objective/g_objective, which is what `compile: true` captures: it runs eagerly and says so.
    compilable = False
    hp_min = {"temperature": 1e-3, "hidden": 1, "proj_dim": 1}
    hp_max = {"temperature": 100, "hidden": 8192, "proj_dim": 4096}
    spectral_norm = True
    paper_arch = "sn-dcgan"
    prior = "uniform"
    addon_refusals = {"adaptivemix": "ContraD's steps call D's feature trunk and heads directly, not d_forward, "
                                     "where AdaptiveMix mixes",
                      "pacgan": "ContraD's steps call D's feature trunk and heads directly, not d_forward, "
                                "where PacGAN packs; and its contrastive loss scores single samples, not packs"}  # fmt: skip

    @classmethod
    def hp_problems(cls, hp):
        problems = super().hp_problems(hp)
        name = hp.get("augment", cls.hp["augment"])
        if not isinstance(name, str) or name not in AUGMENTS:
            problems.append(("augment", AUGMENTS.unknown_message(name)))
        return problems

    @classmethod
    def arch_problems(cls, arch, data_info, hp):
        problems = super().arch_problems(arch, data_info, hp)
        if data_info["kind"] != "images":
            problems.append(("augment", f"{cls.name} needs images: its {hp['augment']!r} augmentation transforms "
                                        f"images, and the dataset has {data_info['kind']}"))  # fmt: skip
        return problems

    def __init__(self, config, data_info, device, dataset=None):
        super().__init__(config, data_info, device, dataset)
        self.augment_fn = AUGMENTS.get(self.hp["augment"])
        self.augment_generator = generator_for(self.device, config["seed"])

    def d_heads(self, feature_dim):
        hidden, dim = self.hp["hidden"], self.hp["proj_dim"]
        return {"head": mlp(feature_dim, hidden, 1), "simclr": mlp(feature_dim, hidden, dim), "supcon": mlp(feature_dim, hidden, dim)}

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment_fn(x, self.augment_generator)

    def project(self, head: str, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.D.heads[head](features), dim=1)

    # -- the losses ------------------------------------------------------------
    def real_views_term(self, views: torch.Tensor, features: torch.Tensor, n: int) -> tuple[str, torch.Tensor]:
        """The contrastive term of the two real views (the first 2N of the 3N): SimCLR's NT-Xent on p1."""
        z = self.project("simclr", features[: 2 * n])
        return "simclr", nt_xent(z[:n], z[n:], self.hp["temperature"])

    def fake_term(self, features: torch.Tensor, n: int) -> torch.Tensor:
        z = self.project("supcon", features)
        return self.hp["fake_weight"] * supcon_fake(z[:n], z[n : 2 * n], z[2 * n :], self.hp["temperature"])

    # -- the steps ---------------------------------------------------------------
    def d_step(self, real, labels):
        n = len(real)
        with torch.no_grad():
            fake = self.G(self.latent(n))
        views = self.augment(torch.cat([real, real, fake]))
        features = self.D.features(views)
        logits = self.D.head(features.detach()).squeeze(1)  # the adversarial loss trains the head alone
        real_out, fake_out = logits[:n], logits[2 * n :]
        loss = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        name, real_term = self.real_views_term(views, features, n)
        terms = {name: real_term, "supcon": self.fake_term(features, n), **self.d_terms(real, fake, real_out, fake_out)}
        self.opt_d.zero_grad(set_to_none=True)
        (loss + sum(terms.values())).backward()
        self.opt_d.step()
        self.d_updates += 1
        self.after_d_step()
        return {"d_loss": loss.detach(), **{f"d_{k}": v.detach() for k, v in terms.items()}}

    def g_step(self, real, labels):
        z = self.latent(len(real))
        fake = self.G(z)
        fake_out = self.D(self.augment(fake))
        loss = F.softplus(-fake_out).mean()
        terms = self.g_terms(z, fake, fake_out, real)
        self.opt_g.zero_grad(set_to_none=True)
        (loss + sum(terms.values())).backward()
        self.opt_g.step()
        return {"g_loss": loss.detach(), **{f"g_{k}": v.detach() for k, v in terms.items()}}

    def train_step(self, next_batch):
        warmup = self.hp["warmup"]
        if warmup:  # the code's linear warm-up: step t (1-based) runs at lr * min(1, (t + 1) / warmup)
            ratio = min(1.0, (self.step + 2) / warmup)
            for opt, key in ((self.opt_g, "lr_g"), (self.opt_d, "lr_d")):
                for group in opt.param_groups:
                    group["lr"] = ratio * self.config["optimizer"][key]
        return super().train_step(next_batch)

    # -- checkpoints ----------------------------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), "augment_rng": self.augment_generator.get_state()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.augment_generator.set_state(state["augment_rng"].to(device="cpu", dtype=torch.uint8))
