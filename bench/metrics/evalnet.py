"""The per-dataset evaluation classifier: trained once, cached on disk.

A small CNN trained with a fixed seed on the dataset's balanced training
data. Its penultimate layer is the feature space of `classifier_fid`; its
predictions feed `class_kl`. The cache file holds the weights, the test
accuracy on the balanced reference set and a hash of the weights, which
every result records so tables never mix scores from different evaluators.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass

import torch
from torch import nn

from bench.cache import cache_dir, file_lock

# Bump when the architecture or training recipe changes: old caches are then ignored.
RECIPE = "cnn-v1"
SEED = 0
EPOCHS = 20


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


@dataclass
class EvalNet:
    model: Classifier
    accuracy: float
    digest: str

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        feats, logits = [], []
        for i in range(0, len(x), batch_size):
            f = self.model.trunk(x[i : i + batch_size])
            feats.append(f)
            logits.append(self.model.head(f))
        return torch.cat(feats), torch.cat(logits)


_loaded: dict[str, EvalNet] = {}


def get_classifier(dataset) -> EvalNet:
    """The cached classifier for `dataset`, training it on first use."""
    key = f"{dataset.name}-classifier-{RECIPE}"
    if key in _loaded:
        return _loaded[key]
    folder = cache_dir("evalnets")
    path = folder / f"{key}.pt"
    # The lock makes concurrent cells wait for one training instead of racing.
    with file_lock(folder / f"{key}.lock"):
        if not path.exists():
            state = _train(dataset)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(state, tmp)
            os.replace(tmp, path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = Classifier(dataset.channels, dataset.num_classes)
    model.load_state_dict(state["weights"])
    model.eval()
    _loaded[key] = EvalNet(model, state["accuracy"], state["digest"])
    return _loaded[key]


def _train(dataset) -> dict:
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        train = dataset.train_set(imbalance=1, seed=SEED)
        test = dataset.reference_set()
        model = Classifier(dataset.channels, dataset.num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        n = len(train.x)
        for _ in range(EPOCHS):
            for idx in torch.randperm(n).split(64):
                loss = nn.functional.cross_entropy(model(train.x[idx]), train.y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(test.x).argmax(1) == test.y).float().mean().item()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:12]
    return {"weights": model.state_dict(), "accuracy": accuracy, "digest": digest, "recipe": RECIPE}
