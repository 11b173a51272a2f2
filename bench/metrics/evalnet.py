"""Per-data-set evaluation networks: trained once with a fixed seed, cached on disk.

Roles (which ones a data set gets follows its declarations, see `roles_for`):
- "classifier": a small CNN on the class labels. Its penultimate layer is
  the feature space of `classifier_fid` and the class FIDs; its predictions
  feed `class_kl` and the head/tail assignment. Score: test accuracy.
- "regressor": the same CNN with one output, regressing a continuous label
  (scaled to [0, 1] by the data set's `label_range`). Feeds `label_score`.
  Score: test MAE in label units.
- "aux_classifier": the CNN on the auxiliary categorical attribute
  (`Split.aux`, e.g. the clothing class of a rotated image, UTKFace's race),
  or on a dataset's separate `aux_split()` (Steering Angle's 5-scene file,
  trained and scored on all of it, as the authors' CVMode-off run). Feeds
  `diversity`. Score: test accuracy.
- "autoencoder": a convolutional autoencoder whose bottleneck is the feature
  space of `sfid`. Score: test reconstruction MSE (pixels in [-1, 1]).
All train on the balanced training data (imbalance 1) and are scored on the
balanced reference split.

Two families, chosen by the dataset option `evalnets` where a dataset
declares it (utkface, steering-angle): `small` (the default, the networks
above, minutes on a CPU) and `authors`, the CcGAN / Dual-NDA authors'
evaluation networks (improved_CcGAN UTKFace/UTKFace_64x64/CcGAN-improved/,
for the `paper` budgets, on a GPU):
- regressor: ResNet-34 (their ResNet34_regre: 3x3 conv, four BasicBlock
  stages of 64..512 channels each opening with stride 2, 4x4 average pool,
  Linear 512-128-128-1 with BN and ReLU, a ReLU output) on the label
  normalised to [0, 1]; MSE, SGD lr 0.01, momentum 0.9, weight decay 1e-4,
  batch 256, 200 epochs, lr / 10 at epochs 50 and 120 (pretrain_CNN_regre.py);
- aux_classifier: ResNet-34 with a linear head (their ResNet34_class),
  cross-entropy, the same optimizer and schedule (pretrain_CNN_class.py);
- autoencoder: their encoder/decoder (models/autoencoder.py: four stride-2
  4x4 convolutions with 3x3 convolutions between, BN, ReLU, to a 512-d
  code; the mirror back), MSE, Adam lr 1e-3, betas (0.5, 0.999), weight
  decay 1e-4, batch 256, 200 epochs, lr x 0.1 every 50 (pretrain_AE.py).
The family is in the recipe every result records (`evaluator.<role>`); the
option is an evaluation setting, left out of the training id (bench.spec). The cache file holds the weights, the score and a
hash of the weights, which every result records so tables never mix scores
from different evaluators. `ganbench evalnets DATASET` trains them ahead.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from bench.cache import cache_dir, load_once
from bench.errors import UserError
from bench.train import load_tensors

# Bump a recipe when its architecture or training changes: old caches are then ignored.
RECIPES = {"classifier": "cnn-v2", "regressor": "cnn-reg-v1", "aux_classifier": "cnn-aux-v1", "autoencoder": "ae-v1"}
SEED = 0
EPOCHS = 20
# 20 epochs, capped at 4,000 batches of 64: small sets (digits: ~420 batches) see
# every epoch; 60k-image sets stop after ~4 epochs, minutes on a CPU, not half an hour.
MAX_STEPS = 4000
# $GANBENCH_EVALNET_STEPS caps every evaluation network's training at that many batches, for smoke
# runs (tests/test_protocols.py: the authors' ResNet-34s train 200 epochs, hours on a CPU). The
# cache keeps such networks apart (the key names the cap) and each result records its network's digest.
STEPS_ENV = "GANBENCH_EVALNET_STEPS"
BOTTLENECK = 64


AUTHORS_RECIPES = {"regressor": "resnet34-reg-v1", "aux_classifier": "resnet34-cls-v1", "autoencoder": "ae512-v1"}
AUTHORS_EPOCHS = 200  # their --epochs for the three networks
AUTHORS_BATCH = 256


class EvalNetUnavailable(Exception):
    """The data set lacks what this evaluation network learns from (the message says what)."""


class Classifier(nn.Module):
    def __init__(self, channels: int, num_classes: int, feature_dim: int = 128):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class AutoEncoder(nn.Module):
    """Two stride-2 convolutions down to a BOTTLENECK-d code and back (resolution divisible by 4)."""

    def __init__(self, channels: int, resolution: int, bottleneck: int = BOTTLENECK):
        super().__init__()
        side = resolution // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * side * side, bottleneck),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck, 64 * side * side), nn.ReLU(), nn.Unflatten(1, (64, side, side)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, channels, 4, 2, 1), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AuthorsNet(nn.Module):
    """Their ResNet34_regre (`regress`) or ResNet34_class: x -> one output per class (or the label)."""

    def __init__(self, channels: int, outputs: int, regress: bool):
        super().__init__()
        from bench.label_embed import trunk

        self.trunk, width = trunk("resnet34", channels)  # their ResNet-34 trunk, pooled to 512
        if regress:
            self.head = nn.Sequential(nn.Linear(width, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 128),
                                      nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 1), nn.ReLU())  # fmt: skip
        else:
            self.head = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def _down(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU()]


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU()]


class AuthorsAutoEncoder(nn.Module):
    """Their encoder(dim_bottleneck=512, ch=64) and decoder, for 64x64 images (4x4 after four halvings)."""

    def __init__(self, channels: int, resolution: int, bottleneck: int = 512, ch: int = 64):
        super().__init__()
        side = resolution // 16
        self.encoder = nn.Sequential(*_down(channels, ch), *_down(ch, 2 * ch), *_down(2 * ch, 4 * ch), *_down(4 * ch, 8 * ch),
                                     nn.Flatten(), nn.Linear(8 * ch * side * side, bottleneck))  # fmt: skip
        last = _up(2 * ch, ch)[:3]  # their last stage: deconv, BN, ReLU, then a 3x3 conv to the channels and Tanh
        self.decoder = nn.Sequential(nn.Linear(bottleneck, 16 * ch * side * side), nn.Unflatten(1, (16 * ch, side, side)),
                                     *_up(16 * ch, 8 * ch), *_up(8 * ch, 4 * ch), *_up(4 * ch, 2 * ch), *last,
                                     nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh())  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@dataclass
class EvalNet:
    role: str
    model: nn.Module
    scores: dict  # {"accuracy": ...} | {"mae": ...} | {"mse": ...}
    digest: str
    extra: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.scores.get("accuracy")

    def describe(self) -> dict:
        family = self.extra.get("family", "small")
        recipe = AUTHORS_RECIPES[self.role] if family == "authors" else RECIPES[self.role]
        return {"recipe": recipe, "digest": self.digest, **self.scores, **({"family": family} if family != "small" else {})}

    @torch.no_grad()
    def _batched(self, fn, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return torch.cat([fn(x[i : i + batch_size].float()) for i in range(0, max(len(x), 1), batch_size)])

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self._batched(self.model.trunk, x)
        return feats, self._batched(self.model.head, feats)

    def predict_labels(self, x: torch.Tensor) -> torch.Tensor:
        """The regressor's estimate of the continuous label, in label units."""
        lo, hi = self.extra["label_range"]
        return self._batched(self.model, x)[:, 0].double() * (hi - lo) + lo

    def predict_classes(self, x: torch.Tensor) -> torch.Tensor:
        return self._batched(self.model, x).argmax(1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._batched(self.model.encoder, x)


def roles_for(dataset) -> list[str]:
    """The evaluation networks a data set's declarations call for."""
    if dataset.kind != "images":
        return []
    if dataset.label_type == "class":
        return ["classifier"]
    if dataset.label_type == "continuous":
        return ["regressor", "aux_classifier", "autoencoder"]
    return []


_loaded: dict[str, EvalNet] = {}


def get_classifier(dataset) -> EvalNet:
    """The cached classifier for `dataset`, training it on first use."""
    return get_evalnet(dataset, "classifier")


def get_evalnet(dataset, role: str) -> EvalNet:
    """The cached network of `role` for `dataset`, training it on first use.

    Raises EvalNetUnavailable when the data set cannot train this role.
    """
    family = family_of(dataset)
    if family == "authors" and role not in AUTHORS_RECIPES:
        raise EvalNetUnavailable(f"the authors' evaluation networks have no {role}")
    key = f"{dataset.data_name()}-{role}-{AUTHORS_RECIPES[role] if family == 'authors' else RECIPES[role]}"
    cap = step_cap()
    if cap is not None:
        key += f"-capped{cap}"
    if role == "aux_classifier" and getattr(dataset, "aux_file", None):
        problem = dataset.aux_problem()  # checked before the cache: the file may be added later
        if problem:
            raise EvalNetUnavailable(problem)
        key += "-" + dataset.aux_file.removesuffix(".h5")
    if key in _loaded:
        return _loaded[key]
    folder = cache_dir("evalnets")
    path = folder / f"{key}.pt"
    # Concurrent cells wait for one training instead of racing. A damaged file (a bad pickle, a cut
    # file) is set aside, named on stderr, and trained again.
    state = load_once(path, lambda tmp: torch.save(_train(dataset, role), tmp), lambda p: load_tensors(p, ()))
    if "unavailable" in state:
        raise EvalNetUnavailable(state["unavailable"])
    model = _build(dataset, role, state.get("extra", {}))
    model.load_state_dict(state["weights"])
    model.eval()
    scores = state.get("scores") or {"accuracy": state["accuracy"]}
    _loaded[key] = EvalNet(role, model, scores, state["digest"], state.get("extra", {}))
    return _loaded[key]


def family_of(dataset) -> str:
    """`small` or `authors`: the dataset's `evalnets` option where it has one."""
    return getattr(dataset, "settings", {}).get("evalnets", "small")


def _build(dataset, role: str, extra: dict) -> nn.Module:
    if extra.get("family") == "authors":
        if role == "autoencoder":
            return AuthorsAutoEncoder(dataset.channels, dataset.resolution)
        return AuthorsNet(dataset.channels, 1 if role == "regressor" else extra["num_aux_classes"], role == "regressor")
    if role == "classifier":
        return Classifier(dataset.channels, dataset.num_classes)
    if role == "aux_classifier":
        return Classifier(dataset.channels, extra["num_aux_classes"])
    if role == "regressor":
        return Classifier(dataset.channels, 1)
    return AutoEncoder(dataset.channels, dataset.resolution)


def _authors_optimizer(model: nn.Module, role: str):
    """(optimizer, lr for epoch e): pretrain_AE.py for the autoencoder, pretrain_CNN_*.py for the others."""
    if role == "autoencoder":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-4)
        return opt, lambda e: 1e-3 * 0.1 ** (e // 50)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    return opt, lambda e: 0.01 / (10 if e >= 50 else 1) / (10 if e >= 120 else 1)


def step_cap() -> int | None:
    """$GANBENCH_EVALNET_STEPS as a number of batches, or None where it is unset."""
    raw = os.environ.get(STEPS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"${STEPS_ENV}: must be a whole number of training batches >= 1, got {raw!r}")
    return int(raw)


def _fit(model: nn.Module, x: torch.Tensor, loss_fn, max_steps: int, role: str | None = None, label: str = "") -> None:
    """Ours: Adam 1e-3, batch 64, EPOCHS capped at `max_steps` batches. With `role`, the authors' recipe.
    Minutes on a CPU for image data: `label` says what trains (bench.progress.task), to the log and `status`."""
    from bench.progress import task

    cap = step_cap()
    if role is not None:
        opt, lr_at = _authors_optimizer(model, role)
        model.train()
        steps, total = 0, AUTHORS_EPOCHS * math.ceil(len(x) / AUTHORS_BATCH)
        with task(label, min(total, cap or total)) as advance:
            for epoch in range(AUTHORS_EPOCHS):
                for group in opt.param_groups:
                    group["lr"] = lr_at(epoch)
                for idx in torch.randperm(len(x)).split(AUTHORS_BATCH):
                    steps += 1
                    if len(idx) < 2:
                        continue  # batch norm needs two images (theirs: the last batch of an epoch is rarely one image)
                    loss = loss_fn(model, idx)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    advance(steps)
                    if cap and steps >= cap:
                        return
        return
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps, max_steps = 0, min(max_steps, cap or max_steps)
    with task(label, min(max_steps, EPOCHS * math.ceil(len(x) / 64))) as advance:
        for _ in range(EPOCHS):
            for idx in torch.randperm(len(x)).split(64):
                loss = loss_fn(model, idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
                advance(steps)
                if steps >= max_steps:
                    return


def _train(dataset, role: str) -> dict:
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        train = dataset.train_set(imbalance=1, seed=SEED)
        test = dataset.reference_set()
        extra: dict = {"family": "authors"} if family_of(dataset) == "authors" else {}
        authors = role if extra else None
        what = f"training the {role} of {dataset.name} (an evaluation network, once per machine)"
        device = torch.device("cuda") if extra and torch.cuda.is_available() else torch.device("cpu")  # ResNet-34, 200 epochs
        ce = nn.functional.cross_entropy
        if role == "classifier":
            model = _build(dataset, role, extra)
            _fit(model, train.x, lambda m, i: ce(m(train.x[i]), train.y[i]), MAX_STEPS, label=what)
        elif role == "aux_classifier":
            separate = dataset.aux_split() if hasattr(dataset, "aux_split") else None
            if separate is not None:  # their pretrain_CNN_class.py trains on all of that file (CVMode off): so do we, and score there
                train = test = separate
            if train.aux is None or test.aux is None:
                return {"unavailable": f"dataset {dataset.name!r} has no auxiliary categorical attribute (Split.aux)"}
            extra["num_aux_classes"] = int(max(train.aux.max(), test.aux.max())) + 1
            model = _build(dataset, role, extra).to(device)
            _fit(model, train.x, lambda m, i: ce(m(train.x[i].to(device)), train.aux[i].long().to(device)), MAX_STEPS, authors, what)
        elif role == "regressor":
            lo, hi = (float(v) for v in dataset.label_range)
            extra["label_range"] = [lo, hi]
            target = (train.y.float() - lo) / (hi - lo)
            model = _build(dataset, role, extra).to(device)
            _fit(model, train.x, lambda m, i: nn.functional.mse_loss(m(train.x[i].to(device))[:, 0], target[i].to(device)), MAX_STEPS, authors, what)
        else:
            if dataset.resolution % 4:
                return {"unavailable": f"the autoencoder needs a resolution divisible by 4, got {dataset.resolution}"}
            model = _build(dataset, role, extra).to(device)
            _fit(model, train.x, lambda m, i: nn.functional.mse_loss(m(train.x[i].to(device)), train.x[i].to(device)), MAX_STEPS, authors, what)
        model = model.cpu().eval()
        net = EvalNet(role, model, {}, "", extra)
        with torch.no_grad():
            if role == "classifier":
                scores = {"accuracy": (model(test.x).argmax(1) == test.y).float().mean().item()}
            elif role == "aux_classifier":
                scores = {"accuracy": (net.predict_classes(test.x) == test.aux.long()).float().mean().item()}
            elif role == "regressor":
                scores = {"mae": (net.predict_labels(test.x) - test.y.double()).abs().mean().item()}
            else:
                scores = {"mse": nn.functional.mse_loss(net._batched(model, test.x), test.x).item()}
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:12]
    state = {"weights": model.state_dict(), "scores": scores, "digest": digest, "recipe": RECIPES[role], "extra": extra}
    if role == "classifier":
        state["accuracy"] = scores["accuracy"]
    return state


def describe_all(dataset) -> list[str]:
    """Train (or load) every evaluation network of `dataset`: one line each, for `ganbench evalnets`."""
    lines = []
    for role in roles_for(dataset):
        try:
            net = get_evalnet(dataset, role)
        except EvalNetUnavailable as exc:
            lines.append(f"{role:15s} unavailable: {exc}")
            continue
        scores = "  ".join(f"{k} {v:.4f}" for k, v in net.scores.items())
        lines.append(f"{role:15s} {net.describe()['recipe']:15s} digest {net.digest}  {scores}")
    return lines
