"""The interfaces plugins implement: architectures, datasets and metrics.

The core codes against these alone and never imports a plugin. They import no torch at
module level, so listing plugins or printing help stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import torch
    from PIL.Image import Image as PILImage


@dataclass(frozen=True)
class ImageShape:
    """Channels and square resolution of the images a model makes or a dataset yields."""

    channels: int
    resolution: int


@dataclass(frozen=True)
class Speed:
    """The runner's fast-path settings, resolved for a device, that a model applies to
    itself in :meth:`GanModel.accelerate` (``ganbench.training.speed`` resolves them)."""

    device: torch.device
    channels_last: bool = False
    #: None = fp32; else the autocast dtype (bf16, or fp16 with a gradient scaler).
    autocast: torch.dtype | None = None
    adam: Literal["fused", "foreach", "plain"] = "plain"
    compile: bool = False
    #: torch.compile's mode when ``compile`` (default, reduce-overhead, max-autotune).
    compile_mode: str = "default"
    #: Replay each training step as one CUDA graph (ganbench.training.graphs); the model
    #: makes its optimizers capturable when this is set.
    graphs: bool = False
    #: Why ``graphs`` is off where it was asked for or would be on by default ("" if on).
    graphs_off: str = ""

    @property
    def memory_format(self) -> torch.memory_format:
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    def params(self) -> dict[str, str]:
        """The resolved settings as MLflow params (``speed.*``)."""
        import torch

        precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast]
        return {
            "speed.channels_last": str(self.channels_last),
            "speed.precision": precision,
            "speed.adam": self.adam,
            "speed.compile": str(self.compile),
            **({"speed.compile_mode": self.compile_mode} if self.compile else {}),
            "speed.graphs": str(self.graphs),
            **({"speed.graphs_off": self.graphs_off} if self.graphs_off else {}),
            "speed.threads": str(torch.get_num_threads()),
            **(
                {"speed.cudnn_benchmark": str(torch.backends.cudnn.benchmark)}
                if self.device.type == "cuda"
                else {}
            ),
        }


class GanModel(ABC):
    """A built generator/discriminator pair with its optimizers and training step.

    The model owns its training step (alternating D and G updates); the runner owns the
    loop, devices, data and logging, so a new architecture or loss touches only its plugin.
    """

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    z_dim: int
    #: The prior :meth:`sample_latent` draws from: "uniform" (on [-1, 1]) or "normal"
    #: (N(0, 1)). The zoo writes it into exported files so onnxruntime users draw the same.
    latent_distribution: str

    @abstractmethod
    def to(self, device: torch.device) -> GanModel:
        """Move the networks (and any optimizer state) to ``device``; returns self."""

    def accelerate(self, speed: Speed) -> None:
        """Apply the runner's fast-path settings (memory layout, autocast, fused optimizer,
        compilation, capturable optimizers for CUDA graphs) before the first step. The
        default ignores them: a plugin that does not implement this trains on the plain
        path, correctly, only slower."""
        return None

    #: The step can be captured as a CUDA graph and traced whole by torch.compile: no
    #: host sync (no ``.item()``, no Python branch on a tensor's value), randomness only
    #: from torch's default generators or :meth:`random_generators`, optimizers made
    #: capturable in :meth:`accelerate` when ``speed.graphs``. The runner then replays
    #: the step as one CUDA graph (``ganbench.training.graphs``); False (the default)
    #: keeps a plugin's step eager, with the reason logged.
    graph_safe_step: ClassVar[bool] = False

    def random_generators(self) -> list[torch.Generator]:
        """CUDA generators of the model's own that its step draws from (besides torch's
        default ones), registered with every capture so replays draw fresh numbers."""
        return []

    #: (rank, world size) of this replica in a data-parallel run; (0, 1) otherwise.
    shard: tuple[int, int] = (0, 1)

    #: Real batches one :meth:`train_step` consumes. A critic trained n times per G update
    #: takes n fresh real batches, as Gulrajani et al.'s WGAN-GP code does (a new batch
    #: from the data generator at each critic iteration), rather than seeing one batch n
    #: times. The runner draws that many batches from its data stream and hands them over
    #: concatenated, so the data cursor (and with it an exact resume) stays the runner's;
    #: epochs count passes over the data, so an epoch is 1/n as many steps. Must equal
    #: :meth:`Architecture.real_batches_per_step` for the config the model was built from.
    real_batches_per_step: int = 1

    def distribute(self, replicas: Any) -> None:
        """Wrap the networks for data-parallel training (a
        :class:`ganbench.training.distributed.Replicas`: ``replicas.wrap(module)`` is DDP), after
        :meth:`accelerate`. G and D each get their own wrapper: one around both marks D's
        parameters ready twice per step (D's loss and G's loss both reach them). A plugin
        that cannot train this way keeps this default, which refuses clearly."""
        from ganbench.errors import UsageError

        raise UsageError(
            f"{type(self).__name__} does not support distributed training; run it in one"
            " process (without torchrun or --nproc)"
        )

    def batch_latent(self, n: int, device: Any) -> torch.Tensor:
        """Latents for this replica's ``n`` images of a training batch.

        Every rank draws the whole global batch's latents from the same generator state
        and keeps its own slice: N ranks draw exactly what one process with the global
        batch would (so a distributed run equals a single-process one up to batch-norm
        statistics and float summation order), and the random state stays identical on
        every rank, so rank 0's checkpoint resumes all of them, at any world size.
        """
        rank, world = self.shard
        z = self.sample_latent(n * world, device=device)
        return z if world == 1 else z[rank * n : (rank + 1) * n]

    @abstractmethod
    def sample_latent(
        self, n: int, *, generator: torch.Generator | None = None, device: Any = None
    ) -> torch.Tensor:
        """Draw ``n`` latent vectors from the model's prior (reproducible with ``generator``)."""

    @abstractmethod
    def train_step(self, real: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """One G update and the D updates that go with it, on real images in [-1, 1]
        (latents from :meth:`batch_latent`).

        ``real`` holds :attr:`real_batches_per_step` batches (n) concatenated along dim 0:
        n x B images, where B is this replica's share of the global batch. With n = 1
        (DCGAN) that is one D update then one G update on one batch; with n > 1 the model
        splits ``real`` into its n batches, one per D update, then updates G once.

        Returns detached scalar tensors (at least ``loss_d``, ``loss_g``, ``d_real``,
        ``d_fake``) left on the device: the runner reads them back only when it logs, so
        the step never forces a host sync.
        """

    def generator_layers(self) -> list[torch.nn.Module]:
        """G's hidden layers, z side first: modules whose outputs are its N x C x h x w
        feature maps after their nonlinearity, the last one before the image layer.

        Analyses read and change those maps with forward hooks (forgetting an object
        drops maps of the second highest). The default says the plugin offers none."""
        from ganbench.errors import UsageError

        raise UsageError(
            f"{type(self).__name__} does not name its generator's layers"
            " (GanModel.generator_layers); this analysis cannot run on it"
        )

    def discriminator_layers(self) -> list[torch.nn.Module]:
        """D's convolutional feature layers, input side first (the probe's features; the
        last is what the guided-backpropagation analysis looks through). The default
        says the plugin offers none."""
        from ganbench.errors import UsageError

        raise UsageError(
            f"{type(self).__name__} does not name its discriminator's layers"
            " (GanModel.discriminator_layers); this analysis cannot run on it"
        )

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on that the model holds: networks, optimizer
        states, a gradient scaler, any generator of its own (the runner saves the global
        random generators, the data order and its own state beside it). A resumed run is
        exact only if nothing is missing here."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (called after :meth:`to` and
        :meth:`accelerate`, so optimizer states land on the device and layout in use)."""


class Architecture(ABC):
    """A GAN family (e.g. DCGAN) whose hyperparameters are a typed dataclass."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: The dataclass of this architecture's hyperparameters; its defaults are the paper's.
    #: Numeric fields declare the values they allow with ``ganbench.hparams.ranged`` (e.g.
    #: ``lr: float = ranged(0.0002, gt=0)``): a value outside is refused before a run
    #: starts, in one line naming the setting and its range; floats must be finite.
    config_class: ClassVar[type]
    #: Defaults this architecture sets for the runner's own settings (e.g. batch size).
    train_defaults: ClassVar[Mapping[str, Any]] = {}

    def preset(self, dataset: str) -> Mapping[str, Any]:
        """Settings that differ from the defaults for ``dataset`` (only the differences)."""
        return {}

    def real_batches_per_step(self, config: Any) -> int:
        """Real batches one training step of a model built from ``config`` consumes (its
        :attr:`GanModel.real_batches_per_step`), known without building it: the runner
        turns ``epochs`` into steps with it, and a resume checks the step count before
        any model exists. The default, 1, is one D update per G update."""
        return 1

    @abstractmethod
    def supported_resolutions(self) -> tuple[int, ...]:
        """Image resolutions the architecture can be built for."""

    @abstractmethod
    def build(self, config: Any, shape: ImageShape) -> GanModel:
        """A freshly initialised model for images of ``shape`` (on the CPU)."""


@dataclass
class ImageArray:
    """Images as the core consumes them: uint8 NCHW (possibly memory-mapped) plus labels.

    Keeping uint8 until the batch is on its device makes data 4x smaller to move and lets
    one prepared array serve any run; scaling to [-1, 1] happens on the device.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    #: Where the images came from, for the run's log (a path, a package, a cache file).
    source: str = ""
    class_names: tuple[str, ...] = ()
    #: How the array was made, beyond ``source``, as params a run logs (e.g. near
    #: duplicates skipped).
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or str(self.images.dtype) != "uint8":
            raise ValueError(
                f"images must be a uint8 N x C x H x W array, got {self.images.dtype}"
                f" with shape {tuple(self.images.shape)}"
            )
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> ImageShape:
        return ImageShape(channels=self.images.shape[1], resolution=self.images.shape[2])


@dataclass(frozen=True)
class DatasetRequest:
    """What a run asks a dataset for."""

    split: str
    resolution: int
    #: Folder holding the dataset's files (``--data-root``); None = ganbench's cache folder.
    root: str | None = None
    #: Dataset-specific choices, e.g. ``{"category": "bedroom"}`` for LSUN.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteFile:
    """A file a dataset can download: where from, what to call it, how to verify it."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    #: Bytes, when known: a short file is reported as truncated (and kept to resume).
    size: int | None = None


class ImageSource(ABC):
    """The raw images of one split, decoded one at a time: what preparation reads.

    Plugins wrap the real file format here (torchvision's dataset classes where they
    exist); the core does the cropping, resizing and caching, the same for every dataset.
    """

    @abstractmethod
    def __len__(self) -> int:
        """Number of images in the split."""

    @abstractmethod
    def read(self, index: int) -> tuple[PILImage, int | None]:
        """Image ``index`` decoded (any size and mode) and its label (None if unlabelled).

        Raises :class:`ganbench.errors.BadImageError` naming the file (or LMDB key) when
        the image cannot be decoded, so the caller can skip it or stop.
        """

    @abstractmethod
    def files(self) -> list[Path]:
        """The files this split reads (for ``data info`` and the cache fingerprint)."""

    def class_names(self) -> tuple[str, ...]:
        """Label index -> class name, where the dataset has names."""
        return ()


class Dataset(ABC):
    """An image dataset, described well enough for a user to cite and obtain it."""

    name: ClassVar[str]
    summary: ClassVar[str]
    channels: ClassVar[int]
    #: None when the dataset has no labels.
    num_classes: ClassVar[int | None]
    default_resolution: ClassVar[int]
    resolutions: ClassVar[tuple[int, ...]]
    splits: ClassVar[tuple[str, ...]]
    license: ClassVar[str]
    citation: ClassVar[str]
    #: How to obtain the files: downloaded by ganbench, by hand (from where, put where), or
    #: shipped with a package.
    obtain: ClassVar[str]
    #: Sub-sets chosen with ``--category`` (LSUN scenes); empty when there are none.
    categories: ClassVar[tuple[str, ...]] = ()
    #: False for small datasets decoded in memory each time (no prepared cache on disk).
    cacheable: ClassVar[bool] = True
    #: True when the files ship inside an installed package (nothing to obtain).
    bundled: ClassVar[bool] = False
    #: The feature extractor its FID/IS are computed with unless another is asked for.
    default_extractor: ClassVar[str] = "inception-v3"

    def check_split(self, split: str) -> None:
        """Raise a :class:`ganbench.errors.UsageError` naming the splits for an unknown one."""
        if split not in self.splits:
            from ganbench.errors import UsageError

            raise UsageError(
                f"{self.name} has no split {split!r}; use one of {', '.join(self.splits)}"
            )

    def remote_files(self, split: str) -> tuple[RemoteFile, ...]:
        """Files ``ganbench data download`` fetches for ``split``; empty = obtain by hand."""
        return ()

    def unpack(self, downloaded: Sequence[Path], root: Path) -> None:
        """Turn verified downloads in ``root`` into the layout :meth:`open` reads
        (extract an archive, decompress idx files). Default: nothing to do."""
        return None

    @abstractmethod
    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        """The split's images under ``root``.

        Raises :class:`ganbench.errors.DatasetNotFoundError` naming the folder, the layout
        expected and how to obtain the files, or :class:`ganbench.errors.UsageError` for a
        split or category the dataset does not have.
        """


class FeatureExtractor(ABC):
    """Turns images into features that sample-quality metrics compare.

    A score is only comparable with scores from the same extractor and weights, so every
    score records :attr:`name`, the weights' sha256 and :attr:`resizer`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    #: How images are brought to the network's input size (recorded with every score).
    resizer: ClassVar[str]
    #: Environment variable that may name a local weights file (offline machines).
    weights_env: ClassVar[str | None] = None
    #: The dimension of each output by feature name, as the network (with its default
    #: weights) gives them, e.g. ``{"pool": 2048, "logits": 1008}``: known without loading
    #: any weights, so FID's sample count (it needs more samples than dimensions for a
    #: covariance that is not singular) is checked before weights are loaded or
    #: downloaded. Undeclared (empty), the check waits for the real features' dimension,
    #: after the weights are loaded and the reference statistics computed.
    feature_dims: ClassVar[Mapping[str, int]] = {}

    @abstractmethod
    def load(self, weights: str | None, device: torch.device) -> LoadedExtractor:
        """The network on ``device``, from ``weights`` (a file) or the extractor's default.

        Raises :class:`ganbench.errors.GanbenchError` naming the fix when the weights
        cannot be had (offline machine, corrupt file).
        """


@dataclass
class LoadedExtractor:
    """A feature extractor ready to run.

    ``module(images)`` takes uint8 N x C x H x W images on the module's device, any channel
    count (1 or 3) and any resolution, and returns ``{"pool": N x D, "logits": N x K}``
    float32 tensors: ``pool`` for FID/KID/precision-recall, ``logits`` for IS.
    """

    module: torch.nn.Module
    #: sha256 of the weights file the module was loaded from.
    weights_sha256: str
    #: Where the weights came from (a path, or "bundled with ganbench_plugins.digits").
    weights_source: str


@dataclass
class RealStats:
    """What the metrics need of the real images' features, cached once per reference.

    ``mu``/``sigma`` (float64) serve FID; ``features`` (float32 N x D, the ``pool``
    output) serve KID and precision/recall, which compare samples, not moments.
    """

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    #: sigma's symmetric square root, kept so FID needs one eigendecomposition, not two.
    sigma_sqrt: np.ndarray | None = None

    @property
    def count(self) -> int:
        return len(self.features)


class Metric(ABC):
    """A sample-quality metric (FID, IS, ...) on extracted features.

    The core extracts the features (generated and real, the real ones cached) and names
    the results: a metric returns base names (``fid``; ``is`` and ``is_std``) and the core
    makes them ``fid_50k``, with the extractor's name in front when it is not Inception.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: Which output of the feature extractor it reads: ``pool`` or ``logits``.
    feature: ClassVar[str] = "pool"
    #: False for metrics of the generated images alone (IS).
    needs_real: ClassVar[bool] = True
    #: True for metrics that fit a covariance to the features (FID's Gaussians): the core
    #: refuses to score them from no more samples (generated, or real when their number
    #: is limited) than the feature's dimension, where the covariance is singular.
    fits_covariance: ClassVar[bool] = False

    @abstractmethod
    def compute(self, fake: np.ndarray, real: RealStats | None, seed: int) -> Mapping[str, float]:
        """Scores by base name, from generated features ``fake`` (float32 N x D)."""


@dataclass(frozen=True)
class AnalysisOption:
    """One option of an analysis, as ``ganbench analyze RUN NAME --<name> VALUE`` takes it."""

    name: str
    help: str
    #: str, int, float, bool (a --flag/--no-flag switch) or pathlib.Path (an existing file).
    type: type = str
    default: Any = None
    required: bool = False
    #: A one-letter short form (``n`` for ``-n``), or empty.
    short: str = ""


@dataclass
class AnalysisResult:
    """What an analysis found; the core writes it into the run under ``analysis/NAME/``."""

    #: key -> picture, written as ``analysis/NAME/key.png`` and logged as an MLflow image.
    pictures: dict[str, PILImage] = field(default_factory=dict)
    #: key -> number, logged as the metric ``analysis.NAME.key`` at the run's step.
    metrics: dict[str, float] = field(default_factory=dict)
    #: key -> text, set as the tag ``analysis.NAME.key`` (what was done, what it shows).
    notes: dict[str, str] = field(default_factory=dict)
    #: key -> JSON-able data, written as ``analysis/NAME/key.json`` (e.g. which maps dropped).
    tables: dict[str, Any] = field(default_factory=dict)
    #: Lines printed for the user after the run.
    lines: list[str] = field(default_factory=list)


class Analysis(ABC):
    """A way of looking inside a trained GAN (the DCGAN paper's Sections 4.1 and 6).

    ``ganbench analyze RUN_ID|CHECKPOINT NAME`` builds an
    :class:`ganbench.analysis.AnalysisContext` (the run's networks on the device, its
    data on request, seeded latents, progress bars) and calls :meth:`run`; the core then
    writes the result into the run. An analysis never logs by itself.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    #: What it needs of the run: any of "generator", "discriminator", "data" (the
    #: training split and a held-out split of the run's dataset).
    needs: ClassVar[frozenset[str]] = frozenset({"generator"})
    options: ClassVar[tuple[AnalysisOption, ...]] = ()

    @abstractmethod
    def run(self, context: Any, options: Mapping[str, Any]) -> AnalysisResult:
        """Do the analysis; ``options`` holds every declared option by name (checked by
        the core's command line). Raise :class:`ganbench.errors.UsageError` for bad input."""
