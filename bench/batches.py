"""How the shared loop draws training batches (`budget.sampler`).

- `epoch` (the default for new results): the training set in shuffled
  passes without replacement, as every reference's loader iterates it
  (Miyato & Koyama's `chainer.iterators.MultiprocessIterator(dataset,
  batchsize)` in pfnet-research/sngan_projection `train.py`; the PyTorch
  `DataLoader(shuffle=True)` of the CcGAN authors' cGAN, ContraD and SDCLR).
  The index stream is one random permutation of the n images after another
  and a batch is the next `batch_size` indices of it, so every image is
  drawn once per epoch. A batch that reaches the end of a permutation takes
  the rest from the next one, as Chainer's iterators do (a PyTorch loader
  would drop or shorten that batch): every batch has `batch_size` images,
  and a set smaller than a batch still trains.
- `replacement`: each batch is `batch_size` indices drawn uniformly with
  replacement, what the harness did before `budget.sampler` existed. A
  config without the key means this (bench.spec.LEGACY_SAMPLER), so the
  results made then keep their ids and their meaning.

Both draw from the loop's seeded CPU generator; `state()` is what a
checkpoint needs besides that generator's state to resume the same stream.
"""

from __future__ import annotations

import torch

from bench.spec import LEGACY_SAMPLER, SAMPLERS


class ReplacementBatches:
    """Uniform draws with replacement (the harness's sampler before `budget.sampler`)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator

    def __call__(self) -> torch.Tensor:
        return torch.randint(self.n, (self.batch_size,), generator=self.generator)

    def state(self) -> dict:
        return {}

    def load(self, state: dict) -> None:
        pass


class EpochBatches:
    """Consecutive slices of a stream of random permutations of range(n)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        if n < 1:
            raise ValueError("the epoch sampler needs at least one training image")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.order = torch.empty(0, dtype=torch.long)  # the current epoch's permutation (drawn when first needed)
        self.pos = 0  # indices of it already handed out

    def __call__(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need:
            if self.pos == len(self.order):
                self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
            take = min(need, len(self.order) - self.pos)
            parts.append(self.order[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state(self) -> dict:
        return {"order": self.order.clone(), "pos": self.pos}

    def load(self, state: dict) -> None:
        order, pos = state["order"].to(device="cpu", dtype=torch.long), int(state["pos"])
        if order.dim() != 1 or not 0 <= pos <= len(order) or (len(order) and len(order) != self.n):
            raise ValueError(f"a checkpoint's epoch order ({tuple(order.shape)}, position {pos}) does not fit {self.n} images")
        self.order, self.pos = order, pos


def batch_sampler(budget: dict, n: int, generator: torch.Generator):
    """The sampler a training config's budget names; a budget without `sampler` predates
    the key and means LEGACY_SAMPLER (bench.spec writes the key at every other value)."""
    name, batch_size = budget.get("sampler", LEGACY_SAMPLER), budget["batch_size"]
    if name == "epoch":
        return EpochBatches(n, batch_size, generator)
    if name == "replacement":
        return ReplacementBatches(n, batch_size, generator)
    raise ValueError(f"budget.sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
