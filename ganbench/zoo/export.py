"""Exporting a trained generator to a zoo ONNX file, checked before it is written.

The file goes through torch's current exporter (``torch.onnx.export(dynamo=True)``, an
explicit opset, the batch axis dynamic and traced at a batch > 1 so no size is baked in),
``onnx.checker`` with ``full_check`` (shape inference included), and a parity check of
onnxruntime against the PyTorch generator at several batch sizes. Only a file that passes
all three is renamed into place.

A class-conditional generator (``GanModel.num_classes`` > 0) is exported with two inputs,
``z`` (float32, N x z_dim) and ``y`` (int64, N), one batch axis for both: the order and
types torch-fidelity's conditional path passes (``gen_model(noise, labels)``,
torch_fidelity/utils.py 0.4.0 lines 191-199).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import ganbench
from ganbench.errors import ZooError
from ganbench.runs.reopen import LoadedRun
from ganbench.zoo.metadata import LATENT_DISTRIBUTIONS, GeneratorInfo, Score
from ganbench.zoo.onnxsave import save_checked

#: Opset 20 is what torch's exporter targets by default and onnxruntime >= 1.17 runs.
DEFAULT_OPSET = 20
#: Batch sizes checked against PyTorch: 1 (no batch-norm batch statistics to hide behind),
#: an odd one, and a full grid.
PARITY_BATCHES = (1, 7, 64)
#: Tolerance on pixel values in [-1, 1]: float32 kernels differ in summation order, which
#: measured 2e-8 (random weights) to 5e-7 (the trained digits model) here; 1e-5 is far
#: below one 8-bit grey level (0.0078).
PARITY_ATOL = 1e-5
TRACE_BATCH = 4


@dataclass(frozen=True)
class Parity:
    batches: tuple[int, ...]
    max_abs_diff: float
    atol: float
    #: Classes the labels were drawn from (0: unconditional, no labels).
    num_classes: int = 0

    def describe(self) -> str:
        sizes = ", ".join(map(str, self.batches))
        checked = min(self.num_classes, max(self.batches))  # the largest batch: 0, 1, 2...
        labels = (
            f" (labels y: {checked} of {self.num_classes} classes)"
            if checked < self.num_classes
            else f" (labels y: all {self.num_classes} classes)"
        )
        labels = labels if self.num_classes else ""
        return (
            f"onnxruntime (CPU) matches PyTorch at batch {sizes}{labels}:"
            f" max |diff| {self.max_abs_diff:.2g} <= {self.atol:g}"
        )


def export_onnx(
    generator: torch.nn.Module, z_dim: int, path: Path, opset: int, num_classes: int = 0
) -> None:
    """The generator (eval mode, on the CPU) as an ONNX graph with a dynamic batch axis;
    with ``num_classes`` it takes ``(z, y)``."""
    generator = generator.eval().cpu()
    z = torch.zeros(TRACE_BATCH, z_dim).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    inputs: tuple[torch.Tensor, ...] = (z,)
    names, shapes = ["z"], {"z": {0: batch}}
    if num_classes:  # distinct labels, so no class is special-cased in the trace
        inputs += (torch.arange(TRACE_BATCH, dtype=torch.int64) % num_classes,)
        names.append("y")
        shapes["y"] = {0: batch}
    # The exporter narrates every pass on stdout and warns about its own internals.
    with (
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                generator,
                inputs,
                dynamo=True,
                opset_version=opset,
                input_names=names,
                output_names=["images"],
                dynamic_shapes=shapes,
                external_data=False,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; all mean "cannot export"
            raise ZooError(
                f"torch.onnx could not export the generator at opset {opset}:"
                f" {str(exc).splitlines()[0][:300]}"
            ) from None
        program.save(str(path), external_data=False)


def check_parity(
    generator: torch.nn.Module,
    path: Path,
    z_dim: int,
    batches: Sequence[int] = PARITY_BATCHES,
    atol: float = PARITY_ATOL,
    num_classes: int = 0,
) -> Parity:
    """onnxruntime's images against PyTorch's for the same latents (and, with
    ``num_classes``, the same labels: random ones, and every class in the largest batch);
    raises past ``atol``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in batches:
        z = rng.uniform(-1, 1, size=(n, z_dim)).astype(np.float32)
        feed, args = {"z": z}, [torch.from_numpy(z)]
        if num_classes:
            every = n == max(batches)
            y = np.arange(n) % num_classes if every else rng.integers(num_classes, size=n)
            feed["y"] = y.astype(np.int64)
            args.append(torch.from_numpy(feed["y"]))
        with torch.no_grad():
            expected = generator.eval()(*args).numpy()
        got = session.run(["images"], feed)[0]
        if got.shape != expected.shape:
            raise ZooError(
                f"the exported file gives shape {got.shape} at batch {n}, PyTorch"
                f" {expected.shape}: the batch axis is not dynamic"
            )
        diff = float(np.abs(got - expected).max())
        worst = max(worst, diff)
        if not diff <= atol:
            raise ZooError(
                f"onnxruntime differs from PyTorch by {diff:.3g} (> {atol:g}) at batch {n};"
                " the export is wrong, nothing was written"
            )
    return Parity(tuple(batches), worst, atol, num_classes)


def generator_info(
    loaded: LoadedRun, name: str, opset: int, parity: Parity, metrics: Sequence[Score]
) -> GeneratorInfo:
    model, plan = loaded.model, loaded.plan
    distribution = getattr(model, "latent_distribution", None)
    if distribution not in LATENT_DISTRIBUTIONS:
        raise ZooError(
            f"{plan.architecture.name} does not say its latent distribution"
            f" (latent_distribution = {distribution!r}); the zoo needs one of"
            f" {', '.join(LATENT_DISTRIBUTIONS)}"
        )
    dataset = plan.dataset
    category = plan.train.category
    return GeneratorInfo(
        name=name,
        architecture=plan.architecture.name,
        dataset=f"{dataset.name}/{category}" if category else dataset.name,
        resolution=plan.train.resolution,
        channels=dataset.channels,
        z_dim=model.z_dim,
        z_distribution=distribution,
        output_range=(-1.0, 1.0),  # the GanModel contract: generators end in tanh
        data_license=dataset.license,
        ganbench_version=ganbench.__version__,
        training_run=f"mlflow run {loaded.run_id}" if loaded.run_id else loaded.source,
        checkpoint=f"{loaded.source} (step {loaded.step})",
        opset=opset,
        parity=parity.describe(),
        metrics=tuple(metrics),
        num_classes=model.num_classes,
        generator=loaded.generator,
        class_names=loaded.class_names,
    )


def write_metadata(source: Path, dest: Path, info: GeneratorInfo) -> None:
    """Copy ``source`` to ``dest`` with ``info`` in its metadata, fully checked, atomically."""
    import onnx

    model = onnx.load(str(source))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, info.to_props())
    model.producer_name = "ganbench"
    model.producer_version = ganbench.__version__
    labels = f", y (N, int64 in [0, {info.num_classes}))" if info.num_classes else ""
    model.doc_string = (
        f"{info.architecture} generator trained on {info.dataset}: z (N x {info.z_dim},"
        f" {LATENT_DISTRIBUTIONS[info.z_distribution]}){labels} -> images (N x"
        f" {info.channels} x {info.resolution} x {info.resolution}, in [-1, 1])"
    )
    save_checked(model, dest, "export")
