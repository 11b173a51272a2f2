"""Regularizers shared by several methods."""

from __future__ import annotations

from typing import Callable

import torch


# Run eagerly inside a compiled step (bench.compiled): the penalty's gradient is
# differentiated again, and AOTAutograd's compiled backward cannot be
# (no double backward). The rest of the step stays compiled.
@torch.compiler.disable
def gradient_penalty(discriminate: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random real/fake interpolates.

    Gulrajani et al. 2017, eq. 3: x_hat = eps * x + (1 - eps) * G(z),
    eps ~ U[0, 1] per sample.
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminate(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
