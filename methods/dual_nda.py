"""Dual-NDA on CcGAN: Ding et al. 2023, "Turning Waste into Wealth:
Leveraging Low-Quality Samples for Enhancing Continuous Conditional
Generative Adversarial Networks" (arXiv 2308.10273, AAAI 2024). Read from
UBCDingXin/Dual-NDA: `UTKFace/UTKFace_64x64/CcGAN/NDA/train_ccgan.py`,
`scripts/run_dual.sh` (UTKFace and Steering Angle), the baseline's
`scripts/run_gene.sh` and the NIQE filtering scripts.

Row `ccgan+dual-nda` (= `ccgan-svdl+dual-nda`, the authors' soft vicinity;
`ccgan-hvdl+dual-nda` works too). D's loss adds two kinds of negatives, each
fed to D with the step's targets t_j (their `nda_c`, `nda_d` terms):

    mean(w_r l+(x_r, t)) + lambda_bar * mean(w_f l-(G(z, y_f), t))
      + lambda_1 * mean(l-(x_I, t)) + lambda_2 * mean(l-(x_II, t))

- Type I (`nda_c`): for each t_j, a real training image drawn uniformly from
  those whose label distance |y - t_j| exceeds the q1-quantile of the
  distances of all N training labels to t_j (np.quantile's linear rule, as
  theirs, train_ccgan.py:403-407). Ties: with integer labels (UTKFace ages)
  the farthest labels can all sit at the cutoff, so none exceeds it; theirs
  then fails its assert (train_ccgan.py:406); we draw among the labels at the
  cutoff distance or beyond (`type1_indices`).
- Type II (`nda_d`): fakes of the trained CcGAN baseline with a high NIQE,
  under the data set's NIQE protocol (`bench.niqe`, the one the `niqe`
  metric uses). UTKFace (one MATLAB NIQE model per age, 8x8 blocks on the
  native 64x64 images, sharpness threshold 0.1: improved_CcGAN
  NIQE/UTKFace/NIQE_64x64/Intra_niqe_train_utkface.m): for each age 1..60,
  `dual_nda_bank_per_label` fakes (theirs: 10,000, run_gene.sh
  `--niqe_nfake_per_label_burnin`), scored by that age's model, and those
  above the q2 quantile of their age kept (NIQE_filter_64x64/
  Intra_niqe_test_utkface.m:44-53: 1,000 of 10,000 per age). Steering Angle
  (one model of the whole data set): fakes at each distinct training label
  (their baseline main.py:543; 100 each in run_gene.sh), one quantile over
  all of them (NIQE_filter_64X64/niqe_test_steeringangle.m:34). The models
  are fitted on all real images of the data set, not the fakes' own; the
  quantile is MATLAB's (numpy's "hazen"). Data sets without the authors'
  protocol use the harness's NIQE, filtered per evaluation label. Each D
  step draws, for each t_j, a bank image uniformly among those with
  |label - t_j| <= r, r starting at kappa_base (their "hard vicinity"
  radius, sqrt(1/nu) for SVDL) and grown by x1.05 until the window holds
  one (their loop, train_ccgan.py:411-416, computed in closed form).
- Weights (run_dual.sh): UTKFace lambda_bar = 0.8, lambda_1 = 0.05,
  lambda_2 = 0.15, q1 = 0.9; Steering Angle 0.7, 0.1, 0.2, q1 = 0.5;
  q2 = 0.9 for both (`badfake_NIQE0.9`). Defaults are UTKFace's.
- Both negatives are mirrored with p = 0.5 when `ccgan_hflip` is on, as
  their `hflip_images` on every image batch.

The baseline is another training run (`needs`): the row's base (ccgan-svdl)
with this cell's CcGAN settings and `dual_nda_bank_step` steps (UTKFace:
40,000; Steering Angle: 20,000). Its training folder holds the bank,
`derived/dual-nda-type2-<hash>.pt` (uint8 images and labels, written once
under a lock), never a checkpoint.

The schedule (`dual_nda_start`): `scratch` (the default) is the authors':
fresh networks trained `budget.steps` steps, lambda_bar on the fakes from
the first step (train_ccgan.py:562), the Type I and II terms from generator
step `dual_nda_start_step` + 1 on (their 0-based `niter >= nda_start_iter`,
train_ccgan.py:347-351, 401, 410, 568-575). UTKFace: 60,000 steps with
dual_nda_start_step 40,000; Steering Angle: 20,000 with 0 (run_dual.sh). The
baseline cell only supplies the Type II bank, as their separately trained
baseline does. `finetune` is ours: the cell starts from the baseline's final
state (networks and optimizers) and trains `budget.steps` more steps with
the negatives from the first (`g_updates` then counts the baseline's steps
too); `dual_nda_start_step` is unused there.

Not here, as in CcGAN (methods/ccgan.py): DiffAugment, which the authors
apply to every D input; Steering Angle's SAGAN network.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from bench import niqe
from bench.cache import build_once
from bench.method import AddOn
from bench.registry import ADDONS, METHODS, plugin_module
from bench.train import CHECKPOINT, load_checkpoint

_ccgan = plugin_module(Path(__file__).with_name("ccgan.py"))
_nda = plugin_module(Path(__file__).with_name("nda.py"))

UPSTREAM = "baseline"
STARTS = ("scratch", "finetune")
BANK_RECIPE = "dual-nda-type2-v2"
GROWTH = 1.05  # their `nda_radius *= 1.05`
QUANTILE_CHUNK = 2**24  # torch.quantile refuses larger inputs


def type1_indices(sorted_y: torch.Tensor, t: torch.Tensor, q: float) -> torch.Tensor:
    """For each target t_j, a uniform index into `sorted_y` among the labels
    whose distance to t_j exceeds the q-quantile of all distances."""
    rows = max(1, QUANTILE_CHUNK // len(sorted_y))
    picked = []
    for part in t.split(rows):
        distance = (sorted_y[None, :] - part[:, None]).abs()
        cutoff = torch.quantile(distance, q, dim=1, keepdim=True)
        outside = distance > cutoff
        # Ties: where the farthest labels all sit at the cutoff, none exceeds it (their
        # `assert len(indx_real_out_vicinity)>=1`, train_ccgan.py:406, fails): take the labels
        # at the cutoff distance or beyond, i.e. the farthest ones.
        tied = outside.sum(1) == 0
        outside = torch.where(tied[:, None], distance >= cutoff, outside)
        count = outside.sum(1)
        rank = (torch.rand(len(part), device=t.device) * count).long().clamp(max=count - 1)
        # the (rank + 1)-th True of each row
        picked.append(torch.searchsorted(outside.long().cumsum(1), (rank + 1)[:, None]).squeeze(1))
    return torch.cat(picked)


def type2_radius(sorted_labels: torch.Tensor, t: torch.Tensor, base: float) -> torch.Tensor:
    """base * 1.05^m with the smallest m >= 0 that puts a bank label within the
    radius of t (the authors grow the radius by x1.05 until one is in)."""
    pos = torch.searchsorted(sorted_labels, t).clamp(1, len(sorted_labels) - 1)
    nearest = torch.minimum((sorted_labels[pos] - t).abs(), (sorted_labels[pos - 1] - t).abs())
    if len(sorted_labels) == 1:
        nearest = (sorted_labels[0] - t).abs()
    m = torch.ceil(torch.log(torch.clamp(nearest / base, min=1.0)) / math.log(GROWTH)).clamp(min=0)
    radius = base * GROWTH**m
    return torch.where(radius < nearest, radius * GROWTH, radius)  # rounding: one more growth step


def keep_worst(scores: np.ndarray, q: float) -> np.ndarray:
    """Mask of the scores above their q-quantile by MATLAB's `quantile` (NIQE_filter_64x64/
    Intra_niqe_test_utkface.m:47-51; MATLAB's rule is numpy's "hazen"). NaN scores, images
    without texture, are not kept."""
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros(len(scores), dtype=bool)
    return finite & (scores > np.quantile(scores[finite], q, method="hazen"))


def filters_per_group(protocol) -> bool:
    """Whether the Type II filter takes a quantile within each label (a NIQE model per label, or the
    harness's NIQE: `protocol` None) or one over all fakes (the authors' one model, Steering Angle)."""
    return protocol is None or protocol == niqe.HARNESS or protocol.per_label


def keep_worst_needs(q: float) -> int:
    """The fewest scores of which `keep_worst(scores, q)` keeps any: the least n with q < (n - 0.5) / n."""
    n = max(2, math.ceil(0.5 / (1 - q)))  # one score is never above its own quantile
    return n if q < (n - 0.5) / n else n + 1


@ADDONS.register("dual-nda")
class DualNDA(AddOn):
    paper = "Ding et al. 2023, Dual-NDA (arXiv 2308.10273): real-wrong-label and low-NIQE-fake negatives on CcGAN"
    hp = {"dual_nda_fake_weight": 0.8, "dual_nda_type1_weight": 0.05, "dual_nda_type2_weight": 0.15,
          "dual_nda_q1": 0.9, "dual_nda_q2": 0.9, "dual_nda_bank_step": 40000, "dual_nda_bank_per_label": 10000,
          "dual_nda_start": "scratch", "dual_nda_start_step": 40000}  # fmt: skip
    hp_choices = {"dual_nda_start": STARTS}
    hp_min = {"dual_nda_bank_step": 1, "dual_nda_bank_per_label": 2, "dual_nda_start_step": 0}
    hp_max = {"dual_nda_q1": 0.999, "dual_nda_q2": 0.999, "dual_nda_bank_per_label": 1_000_000}
    conditional_ok = True
    conflicts = {"nda": "Dual-NDA replaces vanilla NDA's negatives (the authors run them apart)"}

    @classmethod
    def refuses(cls, base):
        return super().refuses(base) or _nda.refuses_non_ccgan(cls, base)

    @classmethod
    def arch_problems(cls, arch, data_info, hp):
        problems = super().arch_problems(arch, data_info, hp)
        merged = {**cls.hp, **hp}
        per_label, q2 = merged["dual_nda_bank_per_label"], merged["dual_nda_q2"]
        if filters_per_group(data_info["niqe"]) and per_label < keep_worst_needs(q2):
            # MATLAB's quantile (numpy's "hazen") of n scores is their largest once q2 > (n - 0.5) / n,
            # and the filter keeps the scores above it: none.
            problems.append(("dual_nda_bank_per_label", f"the Type II filter keeps the fakes above the q2 = {q2} "
                             f"quantile of each label's {per_label}, which is their largest: none; set it to "
                             f"{keep_worst_needs(q2)} or more (the authors: 10000)"))  # fmt: skip
        return problems

    @classmethod
    def dataset_problem(cls, info):
        problem = super().dataset_problem(info)
        if problem is None and info["kind"] != "images":
            return "Dual-NDA ranks the baseline's fakes by NIQE, an image score: it needs images"
        return problem

    @classmethod
    def needs(cls, config):
        """The CcGAN baseline of this dataset, imbalance and seed, with this cell's
        CcGAN settings, trained for `dual_nda_bank_step` steps."""
        needs = super().needs(config)
        base = METHODS.get(cls.base)
        hp = config["hp"]
        override = {"budget": {"steps": hp["dual_nda_bank_step"]}, "hp": {k: hp[k] for k in base.hp},
                    "optimizer": copy.deepcopy(config["optimizer"]), "arch": copy.deepcopy(config["arch"])}  # fmt: skip
        return {**needs, UPSTREAM: {"method": cls.base, "config": override}}

    # -- the schedule, the baseline and its bank ---------------------------------------------
    def begin(self, data, fresh):
        upstream = None
        if fresh and self.hp["dual_nda_start"] == "finetune":
            upstream = self.upstream_state()
            self.load_state_dict(upstream)  # G, D, optimizers, steps and label embedding of the baseline
            super().begin(data, fresh=False)
        else:
            super().begin(data, fresh)
        self.bank_x, self.bank_y = self.type2_bank(upstream)
        order = torch.argsort(self.bank_y)
        self.bank_x, self.bank_y = self.bank_x[order].to(self.device), self.bank_y[order].to(self.device)
        self.facts.update(dual_nda_bank_size=len(self.bank_y), dual_nda_start=self.hp["dual_nda_start"],
                          dual_nda_bank_step=self.hp["dual_nda_bank_step"])  # fmt: skip
        if self.hp["dual_nda_start"] == "scratch":
            self.facts["dual_nda_start_step"] = self.hp["dual_nda_start_step"]

    def negatives_on(self) -> bool:
        """From scratch, the negatives join at generator step `dual_nda_start_step` + 1 (their
        0-based `niter >= nda_start_iter`, train_ccgan.py:347-351, 401, 410, 568-575); fine-tuned,
        from the first step. lambda_bar weighs the fakes from the first step either way (train_ccgan.py:562)."""
        return self.hp["dual_nda_start"] == "finetune" or self.step - 1 >= self.hp["dual_nda_start_step"]

    def upstream_state(self) -> dict:
        path = self.upstream_dir(UPSTREAM) / CHECKPOINT
        if not path.exists():
            raise RuntimeError(f"Dual-NDA reads the baseline's final state from {path}, which does not exist")
        return load_checkpoint(path)["method"]

    def bank_plan(self, model: dict) -> tuple[torch.Tensor, bool]:
        """(normalised labels the baseline is asked for, whether the q2 filter runs within each label).
        A NIQE model per label (UTKFace): the evaluation labels, filtered per label, as their
        run_gene.sh (target labels 1..60, 10,000 fakes each) and NIQE_filter_64x64/
        Intra_niqe_test_utkface.m (a quantile per age). One model of the whole data set in the
        authors' protocol (Steering Angle): the distinct training labels and one quantile over all
        fakes, as their baseline main.py:543 (`target_labels_norm = unique_labels_norm`) and
        NIQE_filter_64X64/niqe_test_steeringangle.m:34. Other data sets (the harness's NIQE):
        the evaluation labels, filtered per label."""
        if not filters_per_group(model["protocol"]):
            return self.distinct.detach().cpu().float(), False
        labels = torch.from_numpy(np.asarray(self.dataset.eval_labels(), dtype=np.float64))
        return self.normalise(labels), True

    def type2_bank(self, upstream: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, normalised labels) of the Type II bank, built once in the baseline's folder."""
        folder = self.upstream_dir(UPSTREAM)
        model = niqe.pristine_model(self.dataset)
        groups, per_group = self.bank_plan(model)
        key = {"recipe": BANK_RECIPE, "upstream": folder.name, "q2": self.hp["dual_nda_q2"], "niqe": model["digest"],
               "per_label": self.hp["dual_nda_bank_per_label"], "seed": self.config["seed"], "per_group": per_group,
               "groups": hashlib.sha256(groups.numpy().tobytes()).hexdigest()[:12]}  # fmt: skip
        tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        path = folder / "derived" / f"dual-nda-type2-{tag}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp):
            x, y = self.build_bank(upstream or self.upstream_state(), groups, model, per_group)
            buffer = io.BytesIO()
            torch.save({"x": x, "y": y, "key": key}, buffer)
            tmp.write_bytes(buffer.getvalue())

        build_once(path, write)
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if len(saved["y"]) == 0:
            raise RuntimeError(f"the Type II bank {path} is empty: no fake of the baseline scored above the "
                               f"q2 = {self.hp['dual_nda_q2']} quantile of its group's finite NIQE scores "
                               f"(flat fakes have no NIQE)")  # fmt: skip
        return saved["x"], saved["y"]

    @torch.no_grad()
    def build_bank(self, upstream: dict, groups: torch.Tensor, model: dict, per_group: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The baseline generator's fakes with NIQE above the q2 quantile of their label group
        (or of all fakes, `per_group` False), each scored by the NIQE fit of its label."""
        G = copy.deepcopy(self.G)
        G.load_state_dict(upstream["G"])
        G.eval()
        generator = torch.Generator(device=self.device).manual_seed(self.config["seed"])
        per_label, batch = self.hp["dual_nda_bank_per_label"], self.config["budget"]["batch_size"]
        lo, hi = self.data_info["label_range"]
        xs, ys, scores = [], [], []
        for label in groups.float():
            fakes = []
            for i in range(0, per_label, batch):
                z = self.latent(min(batch, per_label - i), generator)
                fakes.append(G(z, self.encode(label.expand(len(z)).to(self.device))).cpu())
            fakes = torch.cat(fakes)
            units = np.full(len(fakes), float(label) * (hi - lo) + lo)
            value = niqe.niqe_of(fakes, model, units)
            if per_group:
                keep = torch.from_numpy(keep_worst(value, self.hp["dual_nda_q2"]))
                fakes, value = fakes[keep], value[keep.numpy()]
            xs.append(((fakes + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
            ys.append(label.expand(len(fakes)).clone())
            scores.append(value)
        x, y = torch.cat(xs), torch.cat(ys)
        if not per_group:
            keep = torch.from_numpy(keep_worst(np.concatenate(scores), self.hp["dual_nda_q2"]))
            x, y = x[keep], y[keep]
        return x, y

    # -- the loss -------------------------------------------------------------------
    def fake_weight(self):
        return self.hp["dual_nda_fake_weight"]

    def negative_terms(self, batch, c):
        terms = super().negative_terms(batch, c)
        if not self.negatives_on():
            return terms
        wrong = self.order[type1_indices(self.sorted_y, batch.target, self.hp["dual_nda_q1"])]
        terms["type1"] = self.hp["dual_nda_type1_weight"] * self.fake_term(self.D(self.flip(self.x[wrong]), c)).mean()
        radius = type2_radius(self.bank_y, batch.target, self.kappa_base)
        lo, count = _ccgan.in_window(self.bank_y, batch.target, radius)
        bad = self.bank_x[_ccgan.pick(lo, count)].float() / 127.5 - 1
        terms["type2"] = self.hp["dual_nda_type2_weight"] * self.fake_term(self.D(self.flip(bad), c)).mean()
        return terms


METHODS.alias("ccgan+dual-nda", "ccgan-svdl+dual-nda")

