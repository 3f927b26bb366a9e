"""What a zoo ONNX file says about itself, in the file's own metadata.

A generator is useless without knowing its latent size and distribution, its output range
and what it was trained on, so export writes them into the ONNX ``metadata_props`` (a
string map that onnxruntime reads back as ``custom_metadata_map``) and every zoo command
refuses a file that lacks them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ganbench.errors import ZooError

FORMAT = "ganbench-zoo/1"
#: A zoo file made for torch-fidelity (``ganbench.zoo.flavours``): uint8 RGB images.
TORCH_FIDELITY_FORMAT = "ganbench-zoo-torch-fidelity/1"
#: Priors a zoo generator may use, and how each is written in cards and listings.
LATENT_DISTRIBUTIONS = {"uniform": "uniform on [-1, 1]", "normal": "standard normal N(0, 1)"}
#: Which generator of a run a file holds ("" = not recorded), and how cards say it.
GENERATORS = ("", "ema", "live")
GENERATOR_WORDS = {
    "ema": "the exponential moving average of G's weights (what the run sampled and scored)",
    "live": "G itself (the run kept no moving average)",
    "": "not recorded (a file made before ganbench recorded it)",
}
#: Fields a file may lack (written only where set; see :meth:`GeneratorInfo.optional_values`).
OPTIONAL_FIELDS = ("num_classes", "generator", "class_names")


@dataclass(frozen=True)
class Score:
    """One metric of the generator, and how it was measured (extractor, counts, seed)."""

    name: str
    value: float
    how: str


@dataclass(frozen=True)
class GeneratorInfo:
    """The facts about a generator that its ONNX file, index entry and card all carry."""

    name: str
    architecture: str
    dataset: str
    resolution: int
    channels: int
    z_dim: int
    z_distribution: str
    #: Pixel values the network outputs (tanh: -1 is black, 1 is white).
    output_range: tuple[float, float]
    #: The license of the training data (the weights inherit its terms).
    data_license: str
    ganbench_version: str
    #: MLflow run ID, or the checkpoint path when exported from a file.
    training_run: str
    #: Which checkpoint and step: ``runs:/ID/checkpoints/best.pt (step 1250)``.
    checkpoint: str
    opset: int
    #: How the ONNX file was checked against PyTorch (batch sizes, largest difference).
    parity: str
    metrics: tuple[Score, ...] = field(default_factory=tuple)
    #: Classes of a class-conditional generator, whose file takes ``y`` (int64 labels in
    #: [0, num_classes)) beside ``z``; 0 for an unconditional one (``z`` only). Files made
    #: before it existed lack it: they are unconditional.
    num_classes: int = 0
    #: Which network of the run the file holds: "ema" (the run's exponential moving
    #: average of G, which samples when the run keeps one) or "live" (G itself); "" in
    #: files made before it was recorded.
    generator: str = ""
    #: What each label means (``class_names[k]`` is label k), from the training data;
    #: empty where not recorded (files made before it, datasets without names).
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.z_distribution not in LATENT_DISTRIBUTIONS:
            raise ZooError(
                f"z distribution {self.z_distribution!r} is not one the zoo runtime draws"
                f" ({', '.join(LATENT_DISTRIBUTIONS)})"
            )
        if self.num_classes < 0 or self.num_classes == 1:
            raise ZooError(
                f"num_classes {self.num_classes} is not a class count: 0 (unconditional) or"
                " at least 2"
            )
        if self.class_names and (
            len(self.class_names) != self.num_classes
            or not all(isinstance(n, str) and n for n in self.class_names)
        ):
            raise ZooError(
                f"class_names {list(self.class_names)!r} do not name the {self.num_classes}"
                " classes one non-empty name each"
            )
        if self.generator not in GENERATORS:
            raise ZooError(
                f"generator {self.generator!r} is not one of {', '.join(GENERATORS[1:])}"
            )

    def optional_values(self) -> dict[str, Any]:
        """The fields added after the first zoo files, where set (a file or index entry
        without them keeps its bytes: old entries and the shipped files stay as they were)."""
        values: dict[str, Any] = {}
        if self.num_classes:
            values["num_classes"] = self.num_classes
        if self.generator:
            values["generator"] = self.generator
        if self.class_names:
            values["class_names"] = list(self.class_names)
        return values

    def to_props(self) -> dict[str, str]:
        """The ONNX ``metadata_props``: strings, with JSON for the structured values."""
        props = {"ganbench.format": FORMAT}
        values = asdict(self)
        for key in OPTIONAL_FIELDS:
            values.pop(key)
        for key, value in (values | self.optional_values()).items():
            props[key] = value if isinstance(value, str) else json.dumps(value)
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str) -> GeneratorInfo:
        """Read :meth:`to_props` back; a file without it gets an error saying so."""
        if props.get("ganbench.format") == TORCH_FIDELITY_FORMAT:
            raise ZooError(
                f"{where} is the torch-fidelity flavour of {props.get('name')} (uint8 RGB images"
                " for `fidelity --input1`); ganbench's zoo commands take the plain file"
                f" {props.get('name')}.onnx"
            )
        if props.get("ganbench.format") != FORMAT:
            found = props.get("ganbench.format")
            what = f"its format is {found!r}, not {FORMAT!r}" if found else "it has no metadata"
            raise ZooError(
                f"{where} is not a ganbench zoo generator ({what}); export one with"
                " `ganbench zoo export RUN_ID --name NAME`"
            )
        values: dict[str, Any] = {}
        try:
            for name, kind in cls.__annotations__.items():
                if name in OPTIONAL_FIELDS and name not in props:
                    continue
                raw = props[name]
                values[name] = raw if kind == "str" else json.loads(raw)
            values["output_range"] = tuple(values["output_range"])
            values["metrics"] = tuple(Score(**s) for s in values["metrics"])
            if "class_names" in values:
                values["class_names"] = tuple(values["class_names"])
            return cls(**values)
        except (KeyError, ValueError, TypeError) as exc:
            raise ZooError(
                f"{where} has broken ganbench metadata ({type(exc).__name__}: {exc});"
                " export it again with `ganbench zoo export`"
            ) from None

    def describe(self) -> list[str]:
        """Lines for ``zoo info`` and the model card."""
        lo, hi = self.output_range
        return [
            f"architecture: {self.architecture}",
            f"dataset: {self.dataset} (data license: {self.data_license})",
            f"images: {self.channels} channel(s), {self.resolution}x{self.resolution},"
            f" values in [{lo:g}, {hi:g}]",
            f"latent: z_dim {self.z_dim}, {LATENT_DISTRIBUTIONS[self.z_distribution]}",
            self.labels_line(),
            f"generator: {GENERATOR_WORDS[self.generator]}",
            f"trained in: {self.training_run}; weights: {self.checkpoint}",
            f"ONNX opset {self.opset}; {self.parity}",
            f"ganbench {self.ganbench_version}",
        ]

    def labels_line(self) -> str:
        """What the file takes besides z, in words."""
        if not self.num_classes:
            return "classes: none (unconditional: the file takes z only)"
        line = (
            f"classes: {self.num_classes} (class-conditional: the file takes y, int64 labels"
            f" 0-{self.num_classes - 1}, beside z)"
        )
        if self.class_names:
            line += "; " + ", ".join(f"{k} {n}" for k, n in enumerate(self.class_names))
        return line

    def class_number(self, text: int | str) -> int:
        """A class given as its number or its name (``--class 3``, ``--class church``)."""
        if isinstance(text, int):
            return text
        text = text.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        if text in self.class_names:
            return self.class_names.index(text)
        known = ", ".join(self.class_names) if self.class_names else "none recorded"
        raise ZooError(
            f"--class {text!r} is not a class of {self.name} (numbers 0-{self.num_classes - 1};"
            f" names: {known})"
        )
