"""Training steps through torch.compile: the opt-in runtime setting `compile: true`.

What is compiled: each method's `d_objective` and `g_objective` (a step's
forward passes and losses, bench.method); AOTAutograd derives their
backward passes, which are compiled with them. The optimizer steps, the
update counters and `after_d_step` stay eager: fused Adam is already a few
kernels per step, and counters are host integers that a compiled frame
would guard on (a recompile every step).

How (by device):
- CUDA: inductor with CUDA graphs (`triton.cudagraphs`, what the
  "reduce-overhead" mode sets): a step of a small GAN is bound by kernel
  launches, and a replayed graph launches once.
- CPU: plain inductor (the "default" mode: fused C++ kernels); CUDA graphs
  do not exist there. It needs a C++ compiler; without one the steps run
  eagerly and the record says so.
- Always `fallback_random`: random ops in a compiled graph draw from
  torch's own generators in eager order (inductor's default is its own
  Philox stream), so a compiled run draws the same latents, permutations
  and noise as an eager one and its losses equal eager's to float
  rounding. That is why `compile` is a runtime setting, not part of the
  cell id.

Outputs of a CUDA-graph replay live in the graph's memory pool and are
overwritten by a later replay, so the logs are copied out (one stack) as
soon as a compiled objective returns, the loss is used by backward right
away, each call marks a new CUDA-graph step, and the base steps drop D's
and G's gradients after their optimizer step (G's backward flows through D:
it must not add to gradients a replayed D graph wrote). The first H100 run
of `tests/perf/bench_steps.py` failed without the last two ("accessing
tensor output of CUDAGraphs that has been overwritten by a subsequent
run", in G's backward); the fix is not yet run on a GPU.

A row whose class or any add-on sets `compilable = False` runs eagerly;
`compile_steps` says which path a run took (train.json `train.compile`).
"""

from __future__ import annotations

import inspect
import shutil
import types
from pathlib import Path
from typing import Callable

import torch

from bench.method import Method

OBJECTIVES = ("d_objective", "g_objective")
CXX_COMPILERS = ("g++", "c++", "clang++")  # what inductor's CPU backend can build with


def capture_blocker(cls: type[Method]) -> type | None:
    """The first class of a row (its add-ons first, then the base) that sets `compilable = False`."""
    return next((c for c in cls.__mro__ if c.__dict__.get("compilable") is False), None)


def compile_options(device: torch.device) -> dict:
    """inductor's settings for `device` (see the module docstring)."""
    options = {"fallback_random": True}
    if device.type == "cuda":
        options.update(torch._inductor.list_mode_options("reduce-overhead"))
    return options


def compile_steps(method: Method, backend: str = "inductor") -> dict:
    """Route `method`'s D and G objectives through torch.compile where it allows it;
    the facts for the training record. `backend` other than inductor (e.g.
    "aot_eager", which needs no C++ compiler) is for tests."""
    blocker = capture_blocker(type(method))
    if blocker is not None:
        return {"path": "eager", "reason": f"{blocker.__name__} ({Path(inspect.getfile(blocker)).name}) sets compilable = False"}
    device = method.device
    if backend == "inductor" and device.type == "cpu" and not any(map(shutil.which, CXX_COMPILERS)):
        return {"path": "eager", "reason": f"no C++ compiler ({', '.join(CXX_COMPILERS)}) for inductor's CPU backend"}
    options = compile_options(device) if backend == "inductor" else None
    cudagraphs = bool(options and options.get("triton.cudagraphs"))
    for name in OBJECTIVES:
        setattr(method, name, _compiled(getattr(method, name), backend, options, cudagraphs))
    return {"path": "compiled", "backend": backend, "cudagraphs": cudagraphs, "functions": list(OBJECTIVES)}


def _compiled(objective: Callable, backend: str, options: dict | None, cudagraphs: bool) -> Callable:
    """`objective` (a bound method) through torch.compile, with the same signature.

    The compiled function returns one tensor, [loss, *logs]: with the loss
    and its logs as separate outputs, inductor may fold them into one tensor
    (`loss + 0`, a one-element stack) and the loss came back without its
    grad_fn (torch 2.14). Backward runs through element 0. A CUDA-graph
    replay's logs are cloned out of the graph's pool (one kernel) before the
    next replay overwrites them.
    """
    # The logs' names, set by every call (a side effect Dynamo replays); the key
    # exists from the start, or the second call would recompile.
    names: dict[str, tuple[str, ...]] = {"logs": ()}

    def stacked(real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total, logs = objective(real, labels)
        names["logs"] = tuple(logs)
        return torch.stack([total, *logs.values()])

    compiled = torch.compile(_own_code(stacked, objective.__name__), backend=backend, options=options)

    def run(real: torch.Tensor, labels: torch.Tensor):
        if cudagraphs:
            # Each call is a step of its own for CUDA-graph trees: nothing a previous replay returned is
            # read after this point (its loss went through backward, its logs were cloned out).
            torch.compiler.cudagraph_mark_step_begin()
        values = compiled(real, labels)
        logs = values[1:].detach()
        return values[0], dict(zip(names["logs"], (logs.clone() if cudagraphs else logs).unbind()))

    return run


def _own_code(fn: Callable, name: str) -> Callable:
    """`fn` with a code object of its own. Dynamo keeps compiled code per code
    object; when D's and G's wrappers shared one, G's call reused entries made
    while tracing D across its graph break (the gradient penalty) and G's
    loss came back without a grad_fn (torch 2.14, inductor)."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{name}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
