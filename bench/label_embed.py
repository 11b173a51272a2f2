"""The improved CcGAN's label input (Ding et al. 2023, "CcGAN", Sec. 4.3, "ILI"):
a regression CNN x -> h -> y and a label net y -> h, trained once and frozen.

Two steps, as improved_CcGAN's `train_net_for_label_embed.py` (the Dual-NDA
repository has the same file):
1. x2y: a CNN `EmbedNet` = trunk -> h (Linear 512, BN, ReLU, Linear to
   `DIM_EMBED`, BN, ReLU) -> y (Linear to 1, ReLU), regressing the
   normalised label (MSE), SGD lr 0.01, momentum 0.9, weight decay 1e-4,
   batch 256, lr x 0.1 at 40% and 70% of the epochs (their 80 and 140 of
   200).
2. y2h: the MLP `Y2H` (4 x (Linear, GroupNorm(8), ReLU), Linear, ReLU)
   trained so that h2y(y2h(y')) = y' for y' = clamp(y + N(0, 0.2^2), 0, 1),
   y the distinct normalised training labels, h2y of step 1 frozen; SGD lr
   0.01, momentum 0.9, weight decay 1e-4, batch 128, lr x 0.1 at 30%, 50%
   and 70% of the epochs (their 150, 250, 350 of 500).
G and D then see y2h(y). Only y2h is kept.

Trunks: `resnet34` / `resnet18` (their ResNet34_embed: a 3x3 conv to 64
channels with BN and ReLU, four BasicBlock stages of 64..512 channels,
each starting with stride 2, global average pooling) and `small` (three
convolutions, for CPU budgets; ours, not the authors').

The nets train on the cell's own training split (the long tail of its
imbalance and seed), never on evaluation data; `embedding(...)` caches the
y2h weights in $GANBENCH_CACHE/label-embed/ by dataset, its options,
imbalance, seed and recipe (`bench.cache.load_once`), so every row of one
(dataset, rho, seed) shares one embedding. Training draws from its own
seeded generator inside `torch.random.fork_rng`, so whether the cache
was warm never changes the random streams of the GAN that uses it.
"""

from __future__ import annotations

import hashlib
import io
import json

import torch
import torch.nn.functional as F
from torch import nn

from bench import stage
from bench.cache import cache_dir, load_once
from bench.train import load_tensors

DIM_EMBED = 128
RECIPE = "ili-v1"
TRUNKS = ("resnet34", "resnet18", "small")


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def trunk(name: str, channels: int) -> tuple[nn.Module, int]:
    """(x -> feature vector, its width)."""
    if name == "small":
        return nn.Sequential(nn.Conv2d(channels, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                             nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 128  # fmt: skip
    blocks = {"resnet34": [3, 4, 6, 3], "resnet18": [2, 2, 2, 2]}[name]
    layers: list[nn.Module] = [nn.Conv2d(channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    c_in = 64
    for c_out, n in zip((64, 128, 256, 512), blocks):
        for i in range(n):
            layers.append(BasicBlock(c_in, c_out, 2 if i == 0 else 1))
            c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 512


class EmbedNet(nn.Module):
    """x -> (y estimate, h): the regression CNN whose penultimate layer h is the label space."""

    def __init__(self, trunk_name: str, channels: int, dim_embed: int = DIM_EMBED):
        super().__init__()
        self.trunk, width = trunk(trunk_name, channels)
        self.x2h = nn.Sequential(nn.Linear(width, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                 nn.Linear(512, dim_embed), nn.BatchNorm1d(dim_embed), nn.ReLU())  # fmt: skip
        self.h2y = nn.Sequential(nn.Linear(dim_embed, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.x2h(self.trunk(x))
        return self.h2y(h), h


class Y2H(nn.Module):
    """The authors' model_y2h: a normalised label in [0, 1] -> h."""

    def __init__(self, dim_embed: int = DIM_EMBED):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Linear(1 if i == 0 else dim_embed, dim_embed), nn.GroupNorm(8, dim_embed), nn.ReLU()]
        self.main = nn.Sequential(*layers, nn.Linear(dim_embed, dim_embed), nn.ReLU())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.main(y.reshape(-1, 1) + 1e-8)


def _sgd(params, epochs: int, milestones: tuple[float, ...]) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    steps = sorted({max(1, round(f * epochs)) for f in milestones})
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, gamma=0.1)


def train(x: torch.Tensor, y: torch.Tensor, recipe: dict, seed: int, device: torch.device) -> tuple[dict, dict]:
    """(y2h state dict, facts): both steps on images x in [-1, 1] and labels y in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        net = EmbedNet(recipe["net"], x.shape[1]).to(device)
        opt, schedule = _sgd(net.parameters(), recipe["epochs"], (0.4, 0.7))
        net.train()
        for epoch in range(recipe["epochs"]):
            # Minutes to hours before the GAN's first step: say so (worker log, `ganbench status`).
            stage.say(f"label embedding: x2y ({recipe['net']}) epoch {epoch + 1} of {recipe['epochs']}, {len(x)} images")
            total, count = 0.0, 0
            for idx in torch.randperm(len(x), generator=gen).split(256):
                pred, _ = net(x[idx].to(device))
                loss = F.mse_loss(pred.squeeze(1), y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, count = total + loss.item() * len(idx), count + len(idx)
            schedule.step()
        x2y_mse = total / count
        net.eval()
        h2y = net.h2y.requires_grad_(False)
        y2h = Y2H().to(device)
        unique = torch.unique(y).float()
        opt, schedule = _sgd(y2h.parameters(), recipe["y2h_epochs"], (0.3, 0.5, 0.7))
        for epoch in range(recipe["y2h_epochs"]):
            stage.say(f"label embedding: y2h epoch {epoch + 1} of {recipe['y2h_epochs']}")
            total, count = 0.0, 0
            for idx in torch.randperm(len(unique), generator=gen).split(128):
                noisy = (unique[idx] + 0.2 * torch.randn(len(idx), generator=gen)).clamp(0, 1).to(device)
                loss = F.mse_loss(h2y(y2h(noisy)).squeeze(1), noisy)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, count = total + loss.item() * len(idx), count + len(idx)
            schedule.step()
    facts = {"recipe": RECIPE, **recipe, "x2y_train_mse": x2y_mse, "y2h_train_mse": total / count,
             "distinct_labels": len(unique)}  # fmt: skip
    return {k: v.cpu() for k, v in y2h.state_dict().items()}, facts


def embedding(dataset, imbalance: float, seed: int, y: torch.Tensor, x: torch.Tensor, recipe: dict,
              device: torch.device) -> tuple[dict, dict]:  # fmt: skip
    """(y2h state dict, facts) for the cell's training split (x, y normalised to [0, 1]),
    trained once per dataset, its options, imbalance, seed and recipe, then cached."""
    options = {k: v for k, v in dataset.settings.items() if not dataset.options[k].path}
    key = {"dataset": dataset.name, "options": options, "imbalance": imbalance, "seed": seed, "recipe": RECIPE,
           **recipe, "n": len(y)}  # fmt: skip
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir("label-embed") / f"{dataset.name}-{tag}.pt"

    def write(tmp):
        state, facts = train(x, y, recipe, seed, device)
        buffer = io.BytesIO()
        torch.save({"y2h": state, "facts": facts}, buffer)
        tmp.write_bytes(buffer.getvalue())

    if not path.exists():  # another process may be building it: this one then waits on its lock
        stage.say(f"label embedding: {path.name} is not cached; training it (or waiting for the process that is)")
    saved = load_once(path, write, lambda p: load_tensors(p, ("y2h", "facts")))
    return saved["y2h"], {**saved["facts"], "cache": path.name}
