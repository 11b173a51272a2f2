"""cGAN: a class-conditional GAN with a projection discriminator and
conditional batch norm in G. Miyato & Koyama 2018, "cGANs with Projection
Discriminator" (ICLR 2018); on continuous labels, the cGAN baseline of the
CcGAN papers (Ding et al. 2021/2023, improved_CcGAN `Train_cGAN.py` and
`main.py`), which bins the labels into classes.

c = one_hot(class): with it the projection D's V c is a class embedding and
conditional BN's scale and shift are per class (bench/archs/conditional.py;
on 64x64 images the CcGAN authors' `ccgan-sngan`, their cGAN baseline's
ResNet). Class-labelled data use their classes. Continuous labels are
binned as the CcGAN code bins them: the distinct training labels, sorted,
go in runs of floor(n_distinct / K) per class (the last class takes the
rest), K = `cgan_classes` (theirs: 120 on the circle, one class per
training angle; 60 on UTKFace, one per age; 210 on Steering Angle); a label
belongs to the class whose run's interval [first label, next run's first
label) holds it (the labels evaluation asks for included; below the first
cutoff: class 0; above the last: class K - 1).

`cgan_classes` defaults to the paper's K on each dataset the papers ran
(`hp_by_dataset`), from the authors' scripts: `Simulation/scripts/run_train.sh`
builds one class per training angle (`n_gaussians` 120); `UTKFace/scripts/
run_train.sh` runs 40 and 60 classes, the paper reports 60 (one per age);
`SteeringAngle-improved/scripts/run_train.sh` runs 30, 90, 150 and 210, the
improved CcGAN paper reports 210 (its earlier `SteeringAngle/scripts` ran
30). On rot-fmnist, which no paper ran, it is ours: 45 classes of 2 degrees
(`sweeps/rot-fmnist-conditional.yaml`). Elsewhere a sweep must set it.

The step follows their cGAN: G first, on the real batch's labels, then D on
the same real batch and the (detached) fakes: mean(-log D(x, c)) +
mean(-log(1 - D(G(z, c), c))) ("vanilla", theirs) or the hinge loss of
Miyato & Koyama (`cgan_loss: hinge`). Adam(1e-4, betas 0.5, 0.999), their
setting; Miyato & Koyama used 2e-4, (0, 0.9) and 5 D steps with the hinge
loss on ImageNet, which a sweep can set. Further D steps (`d_steps` > 1)
draw fresh batches and fakes.

Spectral normalization on every layer of D (`cgan_d_sn: true`), trunk,
unconditional head and the projection's class embedding alike, on every
architecture: Miyato & Koyama's D is built of SN layers throughout
(pfnet-research/sngan_projection `dis_models/snresnet_32.py` lines 17-19:
SNLinear head, SNEmbedID embedding; `dis_models/resblocks.py` lines 23-26
and 59-61: SNConvolution2D, shortcuts included), as is the CcGAN authors'
cGAN (improved_CcGAN `UTKFace/UTKFace_128x128/CcGAN-improved/models/
cGAN_SAGAN.py`: snconv2d, snlinear1, sn_embedding1). `ccgan-sngan` has it
built in; on `cond-mlp` and `cond-dcgan-small` the row adds it. Results
made before the key existed had none on those two (`cgan_d_sn: false`, the
legacy value: a config without the key means it, bench.method.hp_legacy).
The authors' older 64x64 UTKFace cGAN (improved_CcGAN `UTKFace/models/
cond_cnn_generator_discriminator.py`) has batch norm and no SN in D; the
projection papers' networks are followed here.

Rare labels are replicated before training where the data set declares it
(`replicate_to`: UTKFace, 200 images per age) and `cgan_replicate` is true
(its default on utkface): the CcGAN authors' `main.py` replicates before it
branches on the GAN, so their cGAN trains on the replicated set too
(improved_CcGAN `UTKFace/UTKFace_64x64/CcGAN-improved/main.py`, the
replication block, then `if args.GAN == "cGAN"`; the same draw as ccgan's,
`replicate_rare`). The loop's batches are drawn from it; the class cutoffs
come from the distinct labels, which replication does not change.

Differences: the CcGAN authors' cGAN on the circle feeds a learned class
embedding by concatenation (no projection) and samples an unseen angle from
the nearest training angle's class; on UTKFace their D sums the last
feature map over space and initialises BN scales N(1, 0.02) with spectral
norm on the embedding. Here one network per data kind serves every
conditional row (`cond-mlp`, `cond-dcgan-small`, `ccgan-sngan` with a
one-hot c), and a label always goes to the class whose interval holds it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from bench.archs import spectral_normalize
from bench.method import Method
from bench.registry import METHODS, plugin_module

ccgan = plugin_module(Path(__file__).with_name("ccgan.py"))


def class_cutoffs(distinct: torch.Tensor, k: int) -> torch.Tensor:
    """The K + 1 cutoff points of CcGAN's binning: the first label of each run of
    floor(n / K) sorted distinct labels, then the largest label."""
    distinct = torch.sort(distinct).values
    if len(distinct) < k:
        raise ValueError(f"cgan_classes = {k} exceeds the {len(distinct)} distinct training labels; set it lower")
    per_class = len(distinct) // k
    return torch.cat([distinct[torch.arange(k) * per_class], distinct[-1:]])


def classes_of(labels: torch.Tensor, cutoffs: torch.Tensor) -> torch.Tensor:
    """The class of each label: how many inner cutoffs are <= it."""
    return torch.searchsorted(cutoffs[1:-1].contiguous(), labels.contiguous(), right=True)


@METHODS.register("cgan")
class CGAN(Method):
    paper = "Miyato & Koyama 2018, cGANs with Projection Discriminator (the CcGAN papers' cGAN baseline)"
    optimizer = {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.999], "d_steps": 1}
    hp = {"cgan_loss": "vanilla", "cgan_classes": 0, "cgan_d_sn": True, "cgan_replicate": False}
    # results before the keys: no SN added (ccgan-sngan's D had its own), no replication
    hp_legacy = {"cgan_d_sn": False, "cgan_replicate": False}
    # The CcGAN papers' class counts per dataset (the default where the row runs there), and
    # their replication of rare labels where their scripts replicate (UTKFace); rot-fmnist's
    # 45 is ours (no paper ran it).
    hp_by_dataset = {"circle": {"cgan_classes": 120}, "utkface": {"cgan_classes": 60, "cgan_replicate": True},
                     "steering-angle": {"cgan_classes": 210}, "rot-fmnist": {"cgan_classes": 45}}  # fmt: skip
    hp_choices = {"cgan_loss": ccgan.LOSSES}
    hp_max = {"cgan_classes": 100_000}
    paper_arch = {"images": "ccgan-sngan"}
    conditional = True
    # Its own train_step and d_step (G's update first, the fake reused by D) do not go through
    # d_objective/g_objective, which is what `compile: true` captures: it runs eagerly and says so.
    compilable = False

    def __init__(self, config, data_info, device, dataset=None):
        self.continuous = data_info["label_type"] == "continuous"
        super().__init__(config, data_info, device, dataset=dataset)
        self.real_term, self.fake_term, self.gen_term = ccgan.losses(self.hp["cgan_loss"])
        self.cutoffs: torch.Tensor | None = None  # continuous labels: set from the training split

    @classmethod
    def arch_problems(cls, arch, data_info, hp):
        problems = super().arch_problems(arch, data_info, hp)
        if data_info["label_type"] == "continuous" and hp["cgan_classes"] < 2:
            problems.append(("cgan_classes", "continuous labels are binned into cgan_classes classes; set it to 2 or more "
                             "(the CcGAN papers: 120 on circle, 60 on utkface, 210 on steering-angle)"))  # fmt: skip
        return problems

    def build_networks(self, arch, data_info):
        G, D = super().build_networks(arch, data_info)
        if self.hp["cgan_d_sn"]:
            spectral_normalize(D)  # every Linear/Conv of D, the projection's embedding too; layers with SN are left as they are
        return G, D

    def label_dim(self) -> int:
        return self.hp["cgan_classes"] if self.continuous else self.data_info["num_classes"]

    def classes(self, labels: torch.Tensor) -> torch.Tensor:
        if not self.continuous:
            return labels.long()
        if self.cutoffs is None:
            raise RuntimeError("cgan bins continuous labels by the training split's cutoffs, which are not set")
        return classes_of(labels.float(), self.cutoffs)

    def label_input(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(self.classes(labels), self.label_dim()).float()

    def batch_rows(self, y):
        to = self.data_info.get("replicate_to", 0)
        if not (self.continuous and self.hp["cgan_replicate"] and to > 1):
            return None
        rows = torch.from_numpy(ccgan.replicate_rare(y.cpu().numpy(), to, self.config["seed"]))
        self.replicated = {"to": to, "added": len(rows) - len(y)}
        return rows

    def begin(self, data, fresh):
        super().begin(data, fresh)
        if self.continuous and fresh:
            self.cutoffs = class_cutoffs(torch.unique(data.y.float()), self.hp["cgan_classes"]).to(self.device)

    def d_step(self, real, c, fake):
        real_out, fake_out = self.D(real, c), self.D(fake, c)
        loss = self.real_term(real_out).mean() + self.fake_term(fake_out).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.d_updates += 1
        return {"d_loss": loss.detach()}

    def train_step(self, next_batch):
        self.step += 1
        real, labels = next_batch()
        c = self.label_input(labels)
        fake = self.G(self.latent(len(real)), c)
        g_loss = self.gen_term(self.D(fake, c)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        logs = self.d_step(real, c, fake.detach())
        for _ in range(self.d_steps_at(self.step) - 1):
            real, labels = next_batch()
            c = self.label_input(labels)
            with torch.no_grad():
                fake = self.G(self.latent(len(real)), c)
            logs = self.d_step(real, c, fake)
        return {**logs, "g_loss": g_loss.detach()}

    def record(self):
        info = super().record()
        if self.continuous:
            info["cgan_classes"] = self.hp["cgan_classes"]
        if getattr(self, "replicated", None):
            info["cgan_replicated"] = self.replicated
        return info

    def state_dict(self):
        return {**super().state_dict(), "cgan_cutoffs": self.cutoffs}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        cutoffs = state.get("cgan_cutoffs")
        self.cutoffs = None if cutoffs is None else cutoffs.to(self.device)
