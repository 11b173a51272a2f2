"""Discriminator rejection sampling (add-on `drs`). Azadi et al. 2019,
"Discriminator Rejection Sampling" (ICLR), Algorithm 1.

A sampler applied after training. With D~ = D's logit on a candidate G(z):
1. burn-in: D~*_M = max of D~ over `drs_burnin` generated samples (10,000);
2. per batch of candidates, D~*_M is updated to the running max, then
   F = D~ - D~*_M - log(1 - exp(D~ - D~*_M - eps)), eps = 1e-6,
   gamma = the `drs_percentile`-th percentile (95) of F in the batch, and a
   candidate is accepted when u <= sigmoid(F - gamma), u ~ U(0, 1).
`record()` gives the acceptance rate (accepted / candidates after burn-in).

Optional (off by default, `drs_d_steps` > 0): after the last training step,
D keeps training for `drs_d_steps` more steps on fresh real batches with G
frozen, using the base method's own D step (the paper fine-tunes D "to
convergence" before sampling; the loss it uses is the base's).

Choices: D~ is D's raw output on un-augmented inputs (`Method.d_score`). For
a BCE-trained D (gan) that is the logit the derivation assumes; for LSGAN
(a real-vs-fake score) and hinge D's (sngan) it is used as the logit, as the
paper does with SAGAN's hinge D. Candidate latents and the uniforms u come
from the seeded evaluation generator, so a cell's samples are reproducible.
The running max starts from the checkpointed value (-inf at first).

Does not apply to critics (wgan, wgan-gp): a Wasserstein critic's output
has no density-ratio meaning (and is defined only up to a constant), so
exp(D~ - D~*_M) is not an acceptance ratio.
"""

import torch

from bench.method import AddOn
from bench.registry import ADDONS


@ADDONS.register("drs")
class DRS(AddOn):
    paper = "Azadi et al. 2019, Discriminator Rejection Sampling"
    hp = {"drs_burnin": 10000, "drs_percentile": 95.0, "drs_eps": 1e-6, "drs_d_steps": 0}
    hp_min = {"drs_burnin": 1}
    hp_max = {"drs_percentile": 100}
    max_candidates_per_sample = 200  # give up (fail the cell) beyond this many candidates per kept sample

    @classmethod
    def refuses(cls, base):
        if base.d_output == "logit":
            return None
        if base.d_output == "critic":
            return f"{base.name}'s D is a Wasserstein critic, not a logit, so exp(D - max D) is no acceptance ratio"
        return f"{base.name} does not declare d_output = 'logit'"

    def __init__(self, config, data_info, device):
        super().__init__(config, data_info, device)
        self.drs_max = float("-inf")
        self.drs_stats: dict = {}

    def train_step(self, next_batch):
        logs = super().train_step(next_batch)
        if self.step == self.config["budget"]["steps"] and self.hp["drs_d_steps"]:
            for _ in range(self.hp["drs_d_steps"]):
                real, labels = next_batch()
                d_logs = self.d_step(real, labels)  # G is not stepped: frozen
            logs.update({f"drs_{k}": v for k, v in d_logs.items()})
        return logs

    @torch.no_grad()
    def sample(self, n, seed, batch_size=500):
        generator = torch.Generator(device=self.device).manual_seed(seed)
        modes = self.G.training, self.D.training
        self.G.eval()
        self.D.eval()
        try:
            for i in range(0, self.hp["drs_burnin"], batch_size):
                logits = self._candidate_logits(min(batch_size, self.hp["drs_burnin"] - i), generator)[1]
                self.drs_max = max(self.drs_max, logits.max().item())
            kept, n_kept, candidates = [], 0, 0
            while n_kept < n:
                if candidates > self.max_candidates_per_sample * n:
                    raise RuntimeError(f"DRS accepted only {n_kept} of {candidates} candidates; giving up")
                x, logits = self._candidate_logits(batch_size, generator)
                self.drs_max = max(self.drs_max, logits.max().item())
                accept = drs_accept(logits, self.drs_max, self.hp["drs_eps"], self.hp["drs_percentile"], generator)
                kept.append(x[accept].cpu())
                n_kept += int(accept.sum())
                candidates += len(x)
        finally:
            self.G.train(modes[0])
            self.D.train(modes[1])
        self.drs_stats = {
            "drs_acceptance_rate": n_kept / candidates,
            "drs_candidates": candidates,
            "drs_burnin": self.hp["drs_burnin"],
            "drs_max_logit": self.drs_max,
        }
        return torch.cat(kept)[:n]

    def _candidate_logits(self, n, generator):
        x = self.G(self.latent(n, generator))
        return x, self.d_score(x).float()

    def record(self):
        return {**super().record(), **self.drs_stats}

    def state_dict(self):
        return {**super().state_dict(), "drs_max": self.drs_max}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.drs_max = state["drs_max"]


def drs_scores(logits: torch.Tensor, max_logit: float, eps: float) -> torch.Tensor:
    """F = D~ - D~*_M - log(1 - exp(D~ - D~*_M - eps)), stable for D~ << D~*_M."""
    delta = logits.double() - max_logit
    return delta - torch.log(-torch.expm1(delta - eps))


def drs_accept(logits, max_logit, eps, percentile, generator=None) -> torch.Tensor:
    """Boolean mask of accepted candidates: u <= sigmoid(F - gamma), gamma = percentile of F."""
    f = drs_scores(logits, max_logit, eps)
    gamma = torch.quantile(f, percentile / 100.0)
    u = torch.rand(len(f), device=logits.device, generator=generator, dtype=torch.float64)
    return u <= torch.sigmoid(f - gamma)
