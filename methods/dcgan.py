"""DCGAN. Radford et al. 2016, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks".

The non-saturating GAN (`gan`) on the DCGAN networks: the same losses, with
`paper_arch = "dcgan"`, so `arch: {name: paper}` gives it its own network
while ContraD and Damage GAN get theirs (`sn-dcgan`) in one sweep. It is a
row of its own rather than an alias of `gan` because an alias names a
composition of methods and add-ons, not an architecture. Damage GAN
(Anaissi et al. 2023) reports it as its baseline.

Adam(2e-4, betas 0.5, 0.999) and batch 128 as in the paper (batch is the
sweep's `budget.batch_size`); the prior is the paper's uniform noise,
U(-1, 1) per coordinate, 100-d with the `dcgan` network's default z_dim.
"""

from pathlib import Path

from bench.registry import METHODS, plugin_module

GAN = plugin_module(Path(__file__).with_name("gan.py")).GAN


@METHODS.register("dcgan")
class DCGAN(GAN):
    paper = "Radford et al. 2016, DCGAN"
    paper_arch = "dcgan"
    prior = "uniform"
