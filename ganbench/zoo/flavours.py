"""Zoo files for other tools: the same generator, in the conventions those tools expect.

torch-fidelity scores a generator given as an ONNX file (``fidelity --input1 G.onnx
--input1-model-z-type T --input1-model-z-size N``): it draws z itself from one of its noise
types (``normal``, ``unit``, ``uniform_0_1``) and expects uint8 RGB images, N x 3 x H x W in
0-255. A plain zoo file wants z from its own prior (uniform on [-1, 1] for DCGAN, which
torch-fidelity cannot draw) and gives floats in [-1, 1], one channel for grey data, so
torch-fidelity refuses it. The torch-fidelity flavour is the plain graph, unchanged, between
a few ONNX nodes: before it the map from a torch-fidelity noise type to the prior (``2u - 1``
from ``uniform_0_1``; ``normal`` is already the normal prior), after it ganbench's own
quantisation (round half up, as ``to_uint8`` and the scorer do) and grey repeated to RGB.
torch-fidelity then scores exactly the images ganbench scores, and the file is checked
against the plain one before it is written. Deriving it needs onnx and onnxruntime only.

A class-conditional file keeps its second input ``y`` (int64 labels) as it is: with
``--input1-model-num-classes N`` torch-fidelity draws labels uniformly from [0, N) after
the noise and calls the model with ``(noise, labels)`` in the file's input order
(torch_fidelity/utils.py 0.4.0 lines 190-199, generative_model_onnx.py ``forward``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ganbench.errors import ZooError
from ganbench.images import to_uint8
from ganbench.zoo.fidelity_file import FidelityFile, fidelity_command
from ganbench.zoo.index import parse, upsert
from ganbench.zoo.metadata import TORCH_FIDELITY_FORMAT, GeneratorInfo
from ganbench.zoo.onnxsave import save_checked

TORCH_FIDELITY = "torch-fidelity"
#: The tools a zoo file can be flavoured for (``--for``).
FLAVOURS = (TORCH_FIDELITY,)
SUFFIX = ".torch-fidelity.onnx"
#: torch-fidelity's noise type for each zoo prior. ("unit", points on a sphere, is none.)
Z_TYPES = {"uniform": "uniform_0_1", "normal": "normal"}
#: Batch sizes checked against the plain file (as in export's parity check).
CHECK_BATCHES = (1, 7, 64)
_PRIOR, _FLOATS = "ganbench_prior_z", "ganbench_float_images"


def flavour_path(plain: Path) -> Path:
    """``NAME.onnx`` -> ``NAME.torch-fidelity.onnx`` beside it."""
    return plain.with_name(plain.name.removesuffix(".onnx") + SUFFIX)


def flavour_entry(entry: Any) -> Any:
    """A zoo entry for ``entry``'s flavour file, so that ``store.pull`` fetches, verifies and
    caches it like any zoo file (as ``NAME.torch-fidelity``)."""
    tf = entry.torch_fidelity
    info = dataclasses.replace(entry.info, name=f"{entry.name}.{TORCH_FIDELITY}")
    return dataclasses.replace(
        entry, info=info, url=tf.url, sha256=tf.sha256, size=tf.size, card=None, picture=None,
        torch_fidelity=None,
    )  # fmt: skip


def _constant(name: str, value: float) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def torch_fidelity_model(plain: Any, info: GeneratorInfo, source_sha256: str, file_name: str):
    """The flavour of the loaded plain zoo model ``plain`` (an ``onnx.ModelProto``)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto()
    model.CopyFrom(plain)
    graph = model.graph
    inputs = ["z", "y"] if info.num_classes else ["z"]
    if [i.name for i in graph.input] != inputs or [o.name for o in graph.output] != ["images"]:
        raise ZooError(
            f"{info.name} does not map {' and '.join(inputs)} to images as zoo files do;"
            " export it again"
        )
    for node in graph.node:  # the plain graph now reads the prior and writes float images
        node.input[:] = [_PRIOR if n == "z" else n for n in node.input]
        node.output[:] = [_FLOATS if n == "images" else n for n in node.output]
    lo, hi = info.output_range
    p = "ganbench_tf_"
    constants = {"two": 2, "one": 1, "lo": lo, "scale": 255 / (hi - lo), "half": 0.5}
    constants |= {"zero": 0, "top": 255}
    if info.z_distribution != "uniform":  # unused there; onnxruntime warns of unused ones
        del constants["two"], constants["one"]
    graph.initializer.extend(_constant(p + k, v) for k, v in constants.items())
    if info.z_distribution == "uniform":  # u ~ U[0, 1) -> 2u - 1 ~ U[-1, 1)
        pre = [
            helper.make_node("Mul", ["z", p + "two"], [p + "2u"]),
            helper.make_node("Sub", [p + "2u", p + "one"], [_PRIOR]),
        ]
    else:
        pre = [helper.make_node("Identity", ["z"], [_PRIOR])]
    # As ganbench's to_uint8: (x - lo) * 255 / (hi - lo) + 0.5, clipped to [0, 255], floored.
    post = [
        helper.make_node("Sub", [_FLOATS, p + "lo"], [p + "shifted"]),
        helper.make_node("Mul", [p + "shifted", p + "scale"], [p + "scaled"]),
        helper.make_node("Add", [p + "scaled", p + "half"], [p + "rounded"]),
        helper.make_node("Clip", [p + "rounded", p + "zero", p + "top"], [p + "clipped"]),
        helper.make_node("Floor", [p + "clipped"], [p + "floored"]),
        helper.make_node("Cast", [p + "floored"], [p + "bytes"], to=TensorProto.UINT8),
        # grey repeated to RGB (one input: RGB as it is)
        helper.make_node("Concat", [p + "bytes"] * (3 // info.channels), ["images"], axis=1),
    ]
    nodes = [*pre, *graph.node, *post]
    del graph.node[:]
    graph.node.extend(nodes)
    batch = onnx.TensorShapeProto.Dimension()
    batch.CopyFrom(graph.output[0].type.tensor_type.shape.dim[0])
    out = helper.make_tensor_value_info(
        "images", TensorProto.UINT8, [None, 3, info.resolution, info.resolution]
    )
    out.type.tensor_type.shape.dim[0].CopyFrom(batch)
    graph.output[0].CopyFrom(out)
    z_type = Z_TYPES[info.z_distribution]
    props = info.to_props() | {
        "ganbench.format": TORCH_FIDELITY_FORMAT,
        "flavour": TORCH_FIDELITY,
        "torch_fidelity.z_type": z_type,
        "torch_fidelity.z_size": str(info.z_dim),
        "torch_fidelity.num_classes": str(info.num_classes),
        "torch_fidelity.command": fidelity_command(file_name, z_type, info.z_dim, info.num_classes),
        "images": f"uint8 RGB, N x 3 x {info.resolution} x {info.resolution}, 0-255",
        "source_sha256": source_sha256,
    }
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    mapped = " (2u - 1 gives the uniform prior)" if info.z_distribution == "uniform" else ""
    labels = f", y (N, int64 in [0, {info.num_classes}))" if info.num_classes else ""
    model.doc_string = (
        f"torch-fidelity flavour of the ganbench zoo generator {info.name}: z (N x"
        f" {info.z_dim}, torch-fidelity's {z_type} noise{mapped}){labels} -> images (N x 3 x"
        f" {info.resolution} x {info.resolution}, uint8 RGB, rounded as ganbench does)"
    )
    return model


def torch_fidelity_noise(z_type: str, n: int, z_size: int, seed: int) -> np.ndarray:
    """Noise as torch-fidelity draws it (NumPy's RandomState, float64 made float32)."""
    rng = np.random.RandomState(seed)
    draw = rng.rand if z_type == "uniform_0_1" else rng.randn
    return draw(n, z_size).astype(np.float32)


def torch_fidelity_labels(num_classes: int, n: int, seed: int) -> np.ndarray:
    """Labels uniform over the classes as torch-fidelity draws them for a conditional model
    (``RandomState.randint(0, N)``), as int64, the type of the file's ``y``."""
    rng = np.random.RandomState(seed)
    return rng.randint(0, num_classes, size=n).astype(np.int64)


def prior_from_noise(z_type: str, noise: np.ndarray) -> np.ndarray:
    """What the flavour's first nodes compute, in NumPy float32: the prior's latents."""
    return (2 * noise - 1).astype(np.float32) if z_type == "uniform_0_1" else noise


def check_torch_fidelity(plain: Path, flavoured: Path, info: GeneratorInfo) -> int:
    """Raise unless the flavour's images equal ganbench's quantisation of the plain file's,
    byte for byte, at several batch sizes and at the ends of the noise range; returns the
    number of images compared."""
    import onnxruntime as ort

    cpu = ["CPUExecutionProvider"]
    plain_s = ort.InferenceSession(str(plain), providers=cpu)
    flavour_s = ort.InferenceSession(str(flavoured), providers=cpu)
    z_type = Z_TYPES[info.z_distribution]
    batches = [torch_fidelity_noise(z_type, n, info.z_dim, seed=n) for n in CHECK_BATCHES]
    if z_type == "uniform_0_1":
        batches.append(np.array([[0.0] * info.z_dim, [1.0] * info.z_dim], np.float32))
    for noise in batches:
        # The same labels to both (the flavour passes y through): the first and last class,
        # then torch-fidelity's draw.
        feed = {}
        if info.num_classes:
            y = torch_fidelity_labels(info.num_classes, len(noise), seed=len(noise))
            feed["y"] = np.concatenate([[0, info.num_classes - 1], y])[: len(noise)]
        images = plain_s.run(["images"], {"z": prior_from_noise(z_type, noise), **feed})[0]
        expected = np.repeat(to_uint8(images, info.output_range), 3 // info.channels, axis=1)
        got = flavour_s.run(["images"], {"z": noise, **feed})[0]
        if got.dtype != np.uint8 or got.shape != expected.shape:
            raise ZooError(
                f"the torch-fidelity flavour gives {got.dtype} {got.shape}, not uint8"
                f" {expected.shape}; nothing was written"
            )
        wrong = int((got != expected).sum())
        if wrong:
            raise ZooError(
                f"the torch-fidelity flavour differs from ganbench's quantisation of the plain"
                f" file in {wrong} of {got.size} pixels at batch {len(noise)}; nothing was written"
            )
    return sum(len(b) for b in batches)


def write_torch_fidelity(plain: Path, dest: Path | None = None) -> tuple[Path, FidelityFile]:
    """Derive, check and write the torch-fidelity flavour of the zoo file ``plain``
    (``dest`` defaults to ``NAME.torch-fidelity.onnx`` beside it); atomically."""
    import onnx

    from ganbench.data.download import file_digest

    dest = Path(dest) if dest is not None else flavour_path(Path(plain))
    try:
        model = onnx.load(str(plain))
    except Exception as exc:  # DecodeError, OSError: either way not a zoo file
        raise ZooError(f"{plain} is not a readable ONNX file ({exc}); give a zoo .onnx") from None
    info = GeneratorInfo.from_props({p.key: p.value for p in model.metadata_props}, str(plain))
    flavoured = torch_fidelity_model(model, info, file_digest(Path(plain), "sha256"), dest.name)
    save_checked(
        flavoured, dest, "flavour", lambda written: check_torch_fidelity(Path(plain), written, info)
    )
    listed = FidelityFile(
        dest.name, file_digest(dest, "sha256"), dest.stat().st_size, Z_TYPES[info.z_distribution],
        info.z_dim, info.num_classes,
    )  # fmt: skip
    return dest, listed


def list_in_index(index_path: Path, plain: Path, made: Path, listed: FidelityFile) -> bool:
    """Add ``made``, the flavour of ``plain``, to the entry of ``plain`` in the local index
    file ``index_path`` (url relative to it); True when it replaced a listed flavour."""
    from ganbench.data.download import file_digest

    if not Path(index_path).is_file():
        raise ZooError(f"zoo index {index_path} does not exist; give the index that lists it")
    index = parse(Path(index_path).read_text(encoding="utf-8"), str(index_path))
    name = GeneratorInfo.from_props(_props(plain), str(plain)).name
    entry = index.get(name)
    sha = file_digest(Path(plain), "sha256")
    if entry.sha256 != sha:
        raise ZooError(
            f"{index_path} lists another file for {name} (sha256 {entry.sha256}, {plain} has"
            f" {sha}); convert the file the index lists"
        )
    url = Path(os.path.relpath(made.resolve(), Path(index_path).resolve().parent)).as_posix()
    fidelity = dataclasses.replace(listed, url=url)
    upsert(Path(index_path), dataclasses.replace(entry, torch_fidelity=fidelity))
    return entry.torch_fidelity is not None


def _props(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
