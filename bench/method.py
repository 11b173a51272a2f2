"""The method plugin contract.

A method is a small class registered in `bench.registry.METHODS`:

- class attributes declare its paper, default `optimizer` settings and its
  own hyperparameters `hp` (the only keys a sweep may set for it);
- a simple loss overrides `d_loss` and `g_loss`, written like the paper;
- a penalty or regularizer adds named terms in `d_terms` / `g_terms`;
- methods that change more override `discriminate` (what D sees),
  `d_forward` (how D computes its output from an input), `latent` (the
  prior), `d_steps_at` (D updates per G update), `after_d_step`,
  `train_step` (the whole step) or `sample` (e.g. rejection sampling);
- networks come from the architecture registry (`bench.archs`) by the
  config's `arch.name`; `paper_arch` names the method's paper network
  (`arch: {name: paper}`), `per_sample_d` asks for a D without batch norm;
- a conditional method (`conditional = True`) builds G(z, c) and D(x, c),
  c being its encoding of a label (`label_input`), and samples for the
  labels evaluation asks for (`sample(n, seed, labels)`); add-ons refuse
  conditional bases unless they say otherwise (`AddOn.conditional_ok`);
- `begin(data, fresh)` is called by the loop before the first step of a
  process: methods that draw their own batches (CcGAN's vicinity) keep the
  training split;
- `d_heads` adds heads on D's feature trunk beyond its one logit
  (projection heads of contrastive methods);
- `record()` returns per-cell facts the result keeps under "method_info"
  (the base gives `g_updates`, `d_updates` and the architecture); state that
  must survive a resume goes through `state_dict` (and, minus the
  optimizers, into `sampling_state`, what evaluation loads);
- `needs(config)` names the training runs of other rows a method builds on
  (Dual-NDA: the CcGAN baseline); `upstream_dir(name)` is such a run's
  training folder, and `derived_file` where to keep what the method derives
  from it.

An add-on (`AddOn`, registered in `bench.registry.ADDONS`) is a mixin that
overrides the same hooks and calls `super()`; `compose` builds the row class
for a name such as "lsgan+icr" as `type(name, (ICR, LSGAN), {...})`.

The shared loop (bench.train) owns the data, the device, seeding, logging,
checkpoints and divergence checks; a method only computes and applies
updates. Hooks chain with `super()`, so add-ons compose as mixins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from bench.archs import arch_facts, build_pair, spectral_normalize
from bench.errors import shown

Batch = tuple[torch.Tensor, torch.Tensor]
# The upper bound of a numeric hyperparameter that declares none: the most
# steps a budget may have (bench.spec.RANGES), far above any weight or scale.
# Sizes (mixture components, held-out samples, bits) declare tighter ones.
HP_MAX = 10_000_000


class Method:
    name: ClassVar[str]  # set by the registry
    paper: ClassVar[str] = ""
    optimizer: ClassVar[dict] = {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999], "d_steps": 1}
    hp: ClassVar[dict] = {}
    hp_choices: ClassVar[dict[str, tuple]] = {}  # allowed values of string hyperparameters
    hp_min: ClassVar[dict[str, float]] = {}  # lower bounds of numeric ones (default 0)
    hp_max: ClassVar[dict[str, float]] = {}  # upper bounds of numeric ones (default HP_MAX)
    # Hyperparameters added after the row had results: at their default they stay out of
    # the resolved config, and so out of the cell id, so those results keep their ids.
    hp_kept_out_of_id: ClassVar[tuple[str, ...]] = ()
    # Hyperparameters whose default changed after the row had results, name -> the value
    # those results computed with (the legacy value). A config without the key means the
    # legacy value, so the key enters the config at every other value, the new default
    # included: old results keep their ids and their meaning, new ones get new ids.
    hp_legacy: ClassVar[dict[str, Any]] = {}
    # False when `train_step` never calls `next_batch` (CcGAN draws its own vicinal
    # batches): `budget.sampler` then changes nothing and stays out of the config.
    loop_batches: ClassVar[bool] = True
    # The paper's settings on particular datasets, dataset name -> {hp key: value}: the row's
    # defaults there (over `hp`, under everything a sweep sets; bench.spec).
    hp_by_dataset: ClassVar[dict[str, dict]] = {}
    spectral_norm: ClassVar[bool] = False  # on every D layer
    # How to flip D's target for one sample (progressive augmentation):
    # "negate" (out -> -out: BCE, hinge, critics) or "one_minus" (out -> 1 - out:
    # LSGAN's 0-1 coding). None: not declared.
    target_flip: ClassVar[str | None] = None
    # The network of the method's paper, used for `arch: {name: paper}` on images.
    paper_arch: ClassVar[str | None] = None
    # True when a loss term assumes D(x) depends on x alone (a gradient
    # penalty): architectures then replace batch norm in D by layer norm.
    per_sample_d: ClassVar[bool] = False
    # name -> the training folder of an upstream run (see `needs`); set by `create`.
    _upstream_dirs: ClassVar[dict[str, Path]] = {}
    # G(z, c) and D(x, c): `label_input` encodes labels as c, `sample` takes the labels to generate.
    conditional: ClassVar[bool] = False
    # The latent prior: "normal", N(0, I), or "uniform", U(-1, 1) per coordinate
    # (DCGAN's and ContraD's). Add-ons such as GM replace it through `latent`.
    prior: ClassVar[str] = "normal"
    # Add-ons whose hooks this method's own steps do not call, name -> why
    # (AddOn.refuses reads it, so `ganbench` refuses such a row in one line).
    addon_refusals: ClassVar[dict[str, str]] = {}
    # False when d_objective / g_objective cannot be captured by torch.compile
    # (host reads, host RNG, data-dependent control flow); say why beside it.
    # A row is compilable when no class it is made of sets False.
    compilable: ClassVar[bool] = True

    def __init__(self, config: dict, data_info: dict, device: torch.device, dataset=None):
        self.config = config
        # with the defaults kept out of the id (hp_kept_out_of_id) and the legacy values (hp_legacy)
        self.hp = {**type(self).hp, **type(self).hp_legacy, **config["hp"]}
        self.z_dim = config["arch"]["z_dim"]
        self.device = device
        self.data_info = data_info
        self.dataset = dataset  # the bench.data.Dataset, for methods that read more than batches (PA's KID)
        self.step = 0  # generator steps done; Method.train_step counts them
        self.d_updates = 0  # discriminator optimizer steps done
        # Loss terms produced by the D passes of the current step's losses
        # (d_step / g_step open it, hooks such as AdaptiveMix's d_forward add
        # to it); None outside those passes.
        self.pass_terms: dict[str, torch.Tensor] | None = None
        G, D = self.build_networks(config["arch"], data_info)
        self.G, self.D = G.to(device), D.to(device)
        self.opt_g = self._optimizer(self.G.parameters(), config["optimizer"]["lr_g"])
        self.opt_d = self._optimizer(self.D.parameters(), config["optimizer"]["lr_d"])

    # -- construction -----------------------------------------------------
    @classmethod
    def create(cls, config: dict, data_info: dict, device: torch.device, dataset=None,
               upstream_dirs: dict[str, str] | None = None) -> "Method":  # fmt: skip
        """Build the method with the training folders of its upstream runs
        (name -> folder, see `needs`), which `upstream_dir` reads from
        `__init__` on. They are set before `__init__` runs rather than passed
        to it, so that methods and add-ons keep the four-argument `__init__`."""
        method = cls.__new__(cls)
        method._upstream_dirs = {name: Path(folder) for name, folder in (upstream_dirs or {}).items()}
        method.__init__(config, data_info, device, dataset=dataset)
        return method

    @classmethod
    def needs(cls, config: dict) -> dict[str, dict]:
        """The training runs of other rows this method builds on, by a name of its choosing:
        {name: {"method": <row>, "config": {<settings merged over the upstream's
        resolved config, e.g. "budget": {"steps": 2000}, "hp": {...}>}}}.

        `config` is this cell's resolved config. The upstream cell has this
        cell's dataset, imbalance, seed and dataset options unless "config"
        names others ("dataset", "imbalance", "seed", "options"); its row is
        resolved with the sweep's settings for that row, then "config" is
        merged over them. The spec adds the upstream cell to the sweep when the
        sweep lacks it and puts its training id into this cell's config
        (`config["upstream"]`, so into its id); the runner starts this cell
        only once that run is trained (until then the cell is `blocked`) and
        `upstream_dir(name)` is its training folder (generator.pt,
        checkpoint.pt, train.json: docs/ARCHITECTURE.md, "The store").
        Default: {} (nothing).
        """
        return {}

    def upstream_dir(self, name: str) -> Path:
        """The training folder of the upstream run `name` (see `needs`); read-only for this method."""
        if name not in self._upstream_dirs:
            declared = ", ".join(map(repr, self.needs(self.config))) or "none"
            raise LookupError(f"method {type(self).name!r} has no upstream training run {name!r} (it needs: {declared}); "
                              "upstream folders come from the runner (Method.create with the cell's "
                              "runtime.upstream_dirs)")  # fmt: skip
        folder = self._upstream_dirs[name]
        if not folder.is_dir():
            raise FileNotFoundError(f"upstream training run {name!r}: no folder {folder}")
        return folder

    def derived_file(self, name: str, filename: str) -> Path:
        """Where to keep a large artifact this method derives from upstream run
        `name` (a bank of its samples): `<upstream dir>/derived/<filename>`.
        Name the file by what made it (e.g. "bank-<hash of the settings>.pt")
        and write it with `bench.cache.build_once` (atomic, under a file lock,
        made once across processes). It lives beside the upstream run, never
        in this method's checkpoints."""
        folder = self.upstream_dir(name) / "derived"
        folder.mkdir(exist_ok=True)
        return folder / filename

    def build_networks(self, arch: dict, data_info: dict) -> tuple[nn.Module, nn.Module]:
        G, D = self.build_pair(arch, data_info)
        # Ds without a head/feature split (CcGAN's concatenating MLP) have no feature_dim; only
        # contrastive rows add heads, and they refuse conditional bases.
        heads = self.d_heads(getattr(D, "feature_dim", None))
        if "head" in heads:
            D.head = heads.pop("head")
        if heads:
            D.heads = nn.ModuleDict(heads)
        if self.spectral_norm:
            spectral_normalize(D)
        return G, D

    def d_heads(self, feature_dim: int) -> dict[str, nn.Module]:
        """Heads on D's feature trunk (inputs of width `feature_dim`), by name.

        "head" replaces D's real/fake head, so D(x) = head(features(x)) is the
        method's logit wherever D is called (samplers, DRS, add-ons); every
        other name goes into `D.heads` (call `self.D.heads[name](self.D.features(x))`).
        Built into D before spectral normalization: they share D's optimizer,
        normalization, device and checkpoint. Default: none."""
        return {}

    def build_pair(self, arch: dict, data_info: dict) -> tuple[nn.Module, nn.Module]:
        """The shared (G, D) pair; an add-on that changes D's input widens it here."""
        if self.conditional:
            return build_pair(arch, data_info, per_sample_d=self.per_sample_d, cond_dim=self.label_dim())
        return build_pair(arch, data_info, per_sample_d=self.per_sample_d)

    @classmethod
    def dataset_problem(cls, info: dict) -> str | None:
        """Why this method cannot train on a dataset with these declarations (`Dataset.info()`), or None."""
        if cls.conditional and info["label_type"] == "none":
            return "a conditional method needs labelled data"
        return None

    @classmethod
    def arch_problems(cls, arch: dict, data_info: dict, hp: dict) -> list[tuple[str, str]]:
        """(hp key, problem) for settings that do not fit this architecture (checked by the spec)."""
        return []

    @classmethod
    def hp_problems(cls, hp: dict) -> list[tuple[str, str]]:
        """(key, problem) for each value of `hp` that does not fit its default's type or range."""
        problems = []
        for key, value in hp.items():
            default = cls.hp[key]
            if key in cls.hp_choices:
                if value not in cls.hp_choices[key]:
                    problems.append((key, f"must be one of {', '.join(map(str, cls.hp_choices[key]))}, got {shown(value)}"))
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    problems.append((key, f"must be true or false, got {value!r}"))
            elif isinstance(default, (int, float)):
                want_int = isinstance(default, int)
                ok_type = isinstance(value, int) if want_int else isinstance(value, (int, float))
                low, high = cls.hp_min.get(key, 0), cls.hp_max.get(key, HP_MAX)
                # NaN and the infinities fail the comparison (YAML's .nan, .inf).
                if isinstance(value, bool) or not ok_type or not low <= value <= high:
                    kind = "an integer" if want_int else "a number"
                    problems.append((key, f"must be {kind} from {low:,} to {high:,}, got {shown(value)}"))
        return problems

    def _optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        opt = self.config["optimizer"]
        if opt["name"] == "adam":
            # The fused kernel is numerically the same update, ~10% faster on small nets.
            return torch.optim.Adam(params, lr=lr, betas=tuple(opt["betas"]), fused=True)
        if opt["name"] == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        return torch.optim.SGD(params, lr=lr)

    # -- the paper's equations ----------------------------------------------
    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define d_loss or override d_step")

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define g_loss or override g_step")

    def d_terms(self, real: torch.Tensor, fake: torch.Tensor, real_out, fake_out) -> dict[str, torch.Tensor]:
        """Extra named D loss terms (penalties, regularizers); summed into the D loss."""
        return {}

    def g_terms(self, z: torch.Tensor, fake: torch.Tensor, fake_out, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra named G loss terms; summed into the G loss."""
        return {}

    # -- hooks --------------------------------------------------------------
    def begin(self, data, fresh: bool) -> None:
        """Called by the loop before this process's first step with the training split
        (`bench.data.Split`, tensors on the method's device); `fresh` is False when
        the state was loaded from a checkpoint (what the state holds is not fetched again)."""

    def batch_rows(self, y: torch.Tensor) -> torch.Tensor | None:
        """The rows of the training split that the loop's batches are drawn from, repeats allowed
        (cgan on UTKFace: rare ages replicated, as the CcGAN authors' scripts); None: every row once."""
        return None

    def label_dim(self) -> int:
        """The width of c, a conditional method's encoding of one label."""
        raise NotImplementedError(f"{type(self).__name__} is conditional and must define label_dim and label_input")

    def label_input(self, labels: torch.Tensor) -> torch.Tensor:
        """c for G and D from labels as the dataset gives them (class ids, continuous values)."""
        raise NotImplementedError(f"{type(self).__name__} is conditional and must define label_dim and label_input")

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The latent prior (`prior`) unless an add-on changes it."""
        if self.prior == "uniform":
            return torch.rand(n, self.z_dim, device=self.device, generator=generator) * 2 - 1
        return torch.randn(n, self.z_dim, device=self.device, generator=generator)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D's output as the training losses see it (with any training-time augmentation)."""
        return self.d_forward(x)

    def d_forward(self, x: torch.Tensor) -> torch.Tensor:
        """How D computes its output from an input: D(x) = head(features(x)) unless an add-on changes it."""
        return self.D(x)

    def add_pass_term(self, name: str, value: torch.Tensor) -> None:
        """Add a loss term from inside the current step's main D passes (no-op outside them)."""
        if self.pass_terms is not None:
            self.pass_terms[name] = self.pass_terms[name] + value if name in self.pass_terms else value

    def after_d_step(self) -> None:
        """Called after each optimizer step of D (e.g. weight clipping)."""

    def d_steps_at(self, step: int) -> int:
        """D updates before generator step `step` (1-based); the optimizer's `d_steps` unless a method schedules them."""
        return self.config["optimizer"]["d_steps"]

    # -- one training step ----------------------------------------------------
    # A step returns detached 0-d tensors, never floats: `.item()` would wait
    # for the GPU every step. The shared loop reads them at its log cadence.
    # `d_objective` / `g_objective` hold a step's forward passes and losses and
    # nothing else (no optimizer, no counters, no host reads): with
    # `compile: true` they are what torch.compile captures (bench.compiled).
    def d_objective(self, real: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the loss D minimises, its logs) for one real batch."""
        with torch.no_grad():
            fake = self.G(self.latent(len(real)))
        self.pass_terms = {}
        real_out, fake_out = self.discriminate(real), self.discriminate(fake)
        passes, self.pass_terms = self.pass_terms, None
        loss = self.d_loss(real_out, fake_out)
        terms = {**self.d_terms(real, fake, real_out, fake_out), **passes}
        logs = {"d_loss": loss.detach(), **{f"d_{k}": v.detach() for k, v in terms.items()}}
        return loss + sum(terms.values()), logs

    def g_objective(self, real: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the loss G minimises, its logs); `real` is the last D step's batch."""
        z = self.latent(len(real))
        fake = self.G(z)
        self.pass_terms = {}
        fake_out = self.discriminate(fake)
        passes, self.pass_terms = self.pass_terms, None
        loss = self.g_loss(fake_out)
        terms = {**self.g_terms(z, fake, fake_out, real), **passes}
        logs = {"g_loss": loss.detach(), **{f"g_{k}": v.detach() for k, v in terms.items()}}
        return loss + sum(terms.values()), logs

    def d_step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        total, logs = self.d_objective(real, labels)
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        self.opt_d.step()
        # Drop D's gradients once used: G's backward flows through D and would add to them. Under CUDA
        # graphs (`compile: true` on a GPU) they are outputs of D's replayed backward graph, overwritten
        # by the next replay ("accessing tensor output of CUDAGraphs that has been overwritten", seen on
        # an H100); eagerly the addition is wasted work.
        self.opt_d.zero_grad(set_to_none=True)
        self.d_updates += 1
        self.after_d_step()
        return logs

    def g_step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        total, logs = self.g_objective(real, labels)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)  # as D's in d_step: no step reads them again
        return logs

    def train_step(self, next_batch: Callable[[], Batch]) -> dict[str, torch.Tensor | float]:
        """`d_steps_at(step)` discriminator updates, then one generator update.

        Overrides must call super() (or advance `self.step` themselves)."""
        self.step += 1
        for _ in range(self.d_steps_at(self.step)):
            real, labels = next_batch()
            logs = self.d_step(real, labels)
        logs.update(self.g_step(real, labels))
        return logs

    # -- after training -------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, seed: int, labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
        """n samples from G with a seeded prior, on the CPU; a conditional
        method generates sample i for `labels[i]` (the runner passes them)."""
        if self.conditional != (labels is not None):
            raise ValueError(f"{self.name}: {'a conditional method samples for given labels' if self.conditional else 'an unconditional method takes no labels'}")
        generator = torch.Generator(device=self.device).manual_seed(seed)
        was_training = self.G.training
        self.G.eval()
        out = []
        for i in range(0, n, batch_size):
            z = self.latent(min(batch_size, n - i), generator)
            if labels is None:
                out.append(self.G(z).cpu())
            else:
                out.append(self.G(z, self.label_input(labels[i : i + len(z)].to(self.device))).cpu())
        self.G.train(was_training)
        return torch.cat(out)

    def record(self) -> dict:
        """Per-cell facts for the result record ("method_info"); add-ons extend it.

        `g_updates` (generator steps) and `d_updates` (discriminator optimizer
        steps, in total) let tables compare budgets; `arch` names the networks
        and their stage sizes."""
        return {"g_updates": self.step, "d_updates": self.d_updates,
                "arch": arch_facts(self.config["arch"], self.data_info)}  # fmt: skip

    # -- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
            "d_updates": self.d_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = state.get("step", 0)
        self.d_updates = state.get("d_updates", 0)

    def sampling_state(self) -> dict:
        """What `sample` and `record` need once training is over (bench.runner
        saves it as generator.pt): the whole state but the optimizers' moments.
        D stays in: samplers (DRS) score candidates with it."""
        return {k: v for k, v in self.state_dict().items() if k not in ("opt_g", "opt_d")}

    def load_sampling_state(self, state: dict) -> None:
        """Load a `sampling_state` into a freshly built method (the optimizers keep their fresh state)."""
        self.load_state_dict({**state, "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()})


FLIPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "negate": lambda out: -out,
    "one_minus": lambda out: 1 - out,
}


class AddOn(Method):
    """A mixin that adds a regularizer, a prior, a sampler or a D-input
    augmentation to any base method it applies to.

    It overrides Method hooks and calls super(); it declares its own `hp`
    (keys prefixed with its name, merged with the base's), and may refuse a
    base (`refuses`) or another add-on (`conflicts`). It must not set
    `optimizer`, `spectral_norm`, `target_flip` or `paper_arch`:
    those are the base's.
    """

    conflicts: ClassVar[dict[str, str]] = {}  # other add-on name -> why the two cannot be combined
    # Add-ons work on D(x) (its features and head) and G(z); a conditional base's
    # D(x, c) and G(z, c) are refused unless the add-on is written for them.
    conditional_ok: ClassVar[bool] = False

    @classmethod
    def refuses(cls, base: type[Method]) -> str | None:
        """Why this add-on does not apply to `base`, or None when it does: a
        conditional base unless the add-on says it works there, then what the
        base says of it (`Method.addon_refusals`). Overrides call super() first."""
        if base.conditional and not cls.conditional_ok:
            return f"{base.name} is conditional (G(z, c), D(x, c)); add-on {cls.name!r} is written for D(x) and G(z)"
        return base.addon_refusals.get(cls.name)


def compose(name: str, base: type[Method], addons: list[type[AddOn]]) -> type[Method]:
    """The row class for `base` with `addons` applied in order (later ones wrap earlier ones).

    Raises ValueError naming the clash when two parts define one hyperparameter.
    """
    hp, owner = dict(base.hp), dict.fromkeys(base.hp, base.name)
    choices, minimum, maximum = dict(base.hp_choices), dict(base.hp_min), dict(base.hp_max)
    by_dataset = {name: dict(values) for name, values in base.hp_by_dataset.items()}
    for addon in addons:
        for name, values in addon.hp_by_dataset.items():
            by_dataset.setdefault(name, {}).update(values)
        for key in addon.hp:
            if key in hp:
                raise ValueError(f"{owner[key]!r} and add-on {addon.name!r} both define hyperparameter {key!r}")
            owner[key] = addon.name
        hp.update(addon.hp)
        choices.update(addon.hp_choices)
        minimum.update(addon.hp_min)
        maximum.update(addon.hp_max)
    attrs = {
        "name": name,
        "base": base.name,
        "addons": tuple(a.name for a in addons),
        "paper": "; ".join([base.paper, *(f"+ {a.name}: {a.paper}" for a in addons)]),
        "hp": hp,
        "hp_choices": choices,
        "hp_min": minimum,
        "hp_max": maximum,
        "hp_by_dataset": by_dataset,
        "hp_kept_out_of_id": tuple(dict.fromkeys([*base.hp_kept_out_of_id, *(k for a in addons for k in a.hp_kept_out_of_id)])),
        "hp_legacy": {**base.hp_legacy, **{k: v for a in addons for k, v in a.hp_legacy.items()}},
        "__module__": base.__module__,
    }
    return type(name, (*reversed(addons), base), attrs)
