"""The model card: what a generator is, how well it does, how to use it, in Markdown."""

from __future__ import annotations

from ganbench.zoo.fidelity_file import NP_INT_NOTE, FidelityFile, shimmed_command
from ganbench.zoo.metadata import GENERATOR_WORDS, LATENT_DISTRIBUTIONS, GeneratorInfo


def render_card(
    info: GeneratorInfo,
    *,
    picture: str,
    sha256: str,
    size: int,
    citation: str,
    sample_seed: int,
    provider: str,
    config: str,
    fidelity: FidelityFile | None = None,
) -> str:
    lo, hi = info.output_range
    res = f"{info.resolution}x{info.resolution}"
    shape = f"N x {info.channels} x {info.resolution} x {info.resolution}"
    metrics = (
        "\n".join(f"| `{s.name}` | {s.value:.4g} | {s.how} |" for s in info.metrics)
        or "| (none) | | exported without scores: `ganbench zoo export --eval-samples N` |"
    )
    return f"""# {info.name}

A {info.architecture.upper()} generator trained on **{info.dataset}** at {res}
({info.channels} channel{"s" if info.channels > 1 else ""}), packaged as an ONNX file
that runs with onnxruntime alone.

![64 samples, seed {sample_seed}]({picture})

64 samples (`ganbench zoo sample {info.name} -n 64 --seed {sample_seed}`, onnxruntime
{provider}); image index = row x 8 + column.{_classes_note(info)}

## Use

```bash
ganbench zoo pull {info.name}
ganbench zoo sample {info.name} -n 64 --seed 0 -o grid.png{_class_use(info)}
ganbench zoo interpolate {info.name} --steps 10 -o walk.png
ganbench zoo arithmetic {info.name} "1,5,9 - 2,4,6 + 7,8,11" --seed 0 -o sum.png{_one_class(info)}
```

Without ganbench, in Python with onnxruntime and NumPy:

```python
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("{info.name}.onnx")
z = {_z_code(info)}{_y_code(info)}
```
{_fidelity_section(info, fidelity)}
## The model

| | |
| --- | --- |
| architecture | {info.architecture} |
| dataset | {info.dataset} |
| output | {shape}, float32 in [{lo:g}, {hi:g}] |
| input `z` | N x {info.z_dim}, {LATENT_DISTRIBUTIONS[info.z_distribution]} |
{_y_row(info)}| generator | {GENERATOR_WORDS[info.generator]} |
| ONNX | opset {info.opset}, dynamic batch axis, {size:,} bytes |
| sha256 | `{sha256}` |
| trained in | {info.training_run} |
| weights | {info.checkpoint} |
| ganbench | {info.ganbench_version} |

## Metrics

| metric | value | how it was measured |
| --- | --- | --- |
{metrics}

Scores from different feature extractors or sample counts are not comparable.

## Training

Hyperparameters of the run, as a file for `ganbench run {info.architecture} --dataset
{info.dataset.split("/")[0]} --config config.toml` (the same code and seed retrain it; bit for bit
only with the same hardware and library versions):

```toml
{config.strip()}
```

## Checks

- `onnx.checker.check_model(full_check=True)` passed.
- {info.parity}.

## Training data and license

{info.dataset}: {info.data_license}. The weights are derived from this data; use them
under its terms.

{citation.strip()}
"""


def _z_code(info: GeneratorInfo) -> str:
    if info.z_distribution == "uniform":
        return f"np.random.default_rng(0).uniform(-1, 1, (16, {info.z_dim})).astype(np.float32)"
    return f"np.random.default_rng(0).standard_normal((16, {info.z_dim}), dtype=np.float32)"


def _classes_note(info: GeneratorInfo) -> str:
    if not info.num_classes:
        return ""
    return (
        f" Class-conditional: each image's class is drawn uniformly from the"
        f" {info.num_classes} classes with the same seed; `--class K` fixes it."
    )


def _class_use(info: GeneratorInfo) -> str:
    if not info.num_classes:
        return ""
    return f"\nganbench zoo sample {info.name} -n 8 --class 0,{info.num_classes - 1} -o two.png"


def _one_class(info: GeneratorInfo) -> str:
    return " --class 0" if info.num_classes else ""


def _y_code(info: GeneratorInfo) -> str:
    """The sampling lines of the card's Python example: with labels for a conditional file."""
    shape = f"N x {info.channels} x {info.resolution} x {info.resolution}"
    lo, hi = info.output_range
    if not info.num_classes:
        feed = '{"z": z}'
    else:
        feed = '{"z": z, "y": y}'
        shape += f", image i of class y[i] in 0-{info.num_classes - 1}"
    y = (
        f"\ny = np.random.default_rng([0, 1]).integers({info.num_classes}, size=16)  # int64"
        "\n# (z and y as `ganbench zoo sample --seed 0` draws them)"
        if info.num_classes
        else ""
    )
    return f'{y}\nimages = session.run(["images"], {feed})[0]  # {shape}, in [{lo:g}, {hi:g}]'


def _y_row(info: GeneratorInfo) -> str:
    if not info.num_classes:
        return ""
    return f"| input `y` | N, int64 class labels in [0, {info.num_classes}) |\n"


def _fidelity_section(info: GeneratorInfo, fidelity: FidelityFile | None) -> str:
    """How to score the torch-fidelity flavour file, when there is one."""
    if fidelity is None:
        return ""
    mapped = " (mapped to 2u - 1 inside)" if fidelity.z_type == "uniform_0_1" else ""
    command = fidelity.command()
    labels, note = "", ""
    if fidelity.num_classes:
        labels = f" and its `{fidelity.num_classes}` class labels (`y`, drawn by torch-fidelity)"
        note = f"\n{NP_INT_NOTE}:\n\n```bash\n{shimmed_command(command)}\n```\n"
    return f"""
With torch-fidelity: `{fidelity.url}` is the same generator taking
torch-fidelity's `{fidelity.z_type}` noise{mapped}{labels} and giving uint8 RGB images
rounded as ganbench rounds them (sha256 `{fidelity.sha256}`):

```bash
{command}
```
{note}"""
