"""One optimizer update from a loss, written so that a whole training step can be one graph.

A model's step calls :func:`optimize` for each network's update. It does what
``zero_grad(set_to_none=True); scaler.scale(loss).backward(); scaler.step(opt)`` does,
with two differences that matter for speed and for capture:

- the backward pass fills the gradients of the optimizer's own parameters only
  (``backward(inputs=...)``): G's loss runs through D, and the weight gradients of D's
  layers that a plain ``backward()`` computes there are never used (D's optimizer drops
  them before its next update). Skipping them saves D's weight-gradient convolutions in
  every G update, and changes no number (G's gradients are the same computation).
- under tracing (``torch.compile``, used to prove that a step has no graph break and no
  host sync) the update calls torch's own functional Adam on the optimizer's own state:
  ``Optimizer.step`` graph-breaks on purpose (torch/optim/optimizer.py ``_use_grad``,
  pytorch#104053) and Dynamo refuses an optimizer step on gradients set inside the same
  graph ("pending mutation on parameter"). Eager steps and CUDA-graph captures call the
  public ``scaler.step(optimizer)``, which runs the same Adam code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim.adam import adam as functional_adam


def parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter the optimizer updates, in its groups' order."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def optimize(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    params: Sequence[torch.Tensor] | None = None,
) -> None:
    """Gradients of ``loss`` for ``optimizer``'s parameters (``params``, the same ones,
    when the caller keeps the list; the rest untouched), then its step, through fp16's
    gradient ``scaler`` where there is one (the caller updates the scaler)."""
    params = parameters(optimizer) if params is None else list(params)
    for p in params:
        p.grad = None  # zero_grad(set_to_none=True), which Dynamo does not trace
    if scaler is not None:
        # GradScaler is not traceable (Dynamo skips torch.amp): fp16 steps are eager or
        # captured as CUDA graphs, never traced whole
        scaler.scale(loss).backward(inputs=params)
        scaler.step(optimizer)
        return
    loss.backward(inputs=params)
    if torch.compiler.is_compiling():
        _traced_adam_step(optimizer)
    else:
        optimizer.step()


def _traced_adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` for a traced step: torch's functional Adam on the optimizer's
    own state tensors, its own hyperparameters. The state must exist (one eager step
    creates it, as any warm-up does)."""
    if not isinstance(optimizer, torch.optim.Adam):
        raise NotImplementedError("a traced step supports torch.optim.Adam only")
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        states = [optimizer.state[p] for p in params]
        if any("exp_avg" not in s for s in states):
            raise RuntimeError("run one eager step before tracing: Adam's state is empty")
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            functional_adam(
                params,
                [p.grad for p in params],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
                [s["step"] for s in states],
                foreach=group["foreach"],
                capturable=group["capturable"],
                differentiable=group["differentiable"],
                fused=group["fused"],
                amsgrad=group["amsgrad"],
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
            )
