"""The interfaces an architecture plugin implements: :class:`Architecture` builds a
:class:`GanModel`, which applies the runner's :class:`Speed` settings and owns its step.

No torch at module level (only under ``TYPE_CHECKING``), so listing plugins stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ganbench.plugins.interfaces.common import ImageShape

if TYPE_CHECKING:
    import torch


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

    #: Classes a class-conditional model generates (its generator takes ``(z, y)``, its
    #: step the real images' labels); 0 for an unconditional model (``G(z)``).
    num_classes: int = 0

    #: Differentiable augmentation applied to every image D sees in training (real and
    #: generated alike; DiffAugment, ``ganbench.training.augment``), set by the runner
    #: before :meth:`accelerate`; None = none. Evaluation, probes and analyses call the
    #: networks directly and never see it.
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None

    def d_input(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of ``images`` in a training step: :attr:`augment` of them, if set.
        A plugin's step calls it on real and generated images before D."""
        return images if self.augment is None else self.augment(images)

    def sample_labels(
        self, n: int, *, generator: torch.Generator | None = None, device: Any = None
    ) -> torch.Tensor | None:
        """``n`` class labels, uniform over the classes (int64), for generated images; None
        for an unconditional model. Drawn after the latents of the same images, from the
        same ``generator``, so a seed fixes both."""
        if not self.num_classes:
            return None
        import torch

        return torch.randint(self.num_classes, (n,), generator=generator, device=device)

    def batch_labels(self, n: int, device: Any) -> torch.Tensor | None:
        """Labels for this replica's ``n`` generated images of a training batch, drawn for
        the whole global batch and sliced, like :meth:`batch_latent`."""
        rank, world = self.shard
        y = self.sample_labels(n * world, device=device)
        return y if y is None or world == 1 else y[rank * n : (rank + 1) * n]

    #: An exponential moving average of :attr:`generator` (``ganbench.training.ema``) that
    #: the runner keeps when the run asks for one: :attr:`sampler` is then it, not G.
    averaged_generator: torch.nn.Module | None = None

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that samples, scores and is exported: the moving average where
        the run keeps one, else :attr:`generator` itself."""
        return self.generator if self.averaged_generator is None else self.averaged_generator

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] for latents ``z`` (and labels ``y``, for a conditional model)
        from :attr:`sampler` as it is: what sampling, scoring and export call."""
        return self.sampler(z) if y is None else self.sampler(z, y)

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

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers of the step, whose learning rates the runner schedules
        (``lr_decay``); empty: the plugin's learning rates cannot be scheduled."""
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
    def train_step(
        self, real: torch.Tensor, labels: torch.Tensor | None = None
    ) -> Mapping[str, torch.Tensor]:
        """One G update and the D updates that go with it, on real images in [-1, 1]
        (latents from :meth:`batch_latent`; for a conditional model, ``labels`` are the
        real images' classes, int64, one per image, and the generated images' classes come
        from :meth:`batch_labels`; an unconditional model is given None).

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

    #: A package whose ``presets/DATASET.toml`` files the default :meth:`preset` reads
    #: (None: no presets). A subclass in another plugin names its own, so it never
    #: inherits its base's presets.
    presets_package: ClassVar[str | None] = None

    def preset(self, dataset: str) -> Mapping[str, Any]:
        """Settings that differ from the defaults for ``dataset`` (only the differences):
        ``presets/DATASET.toml`` in :attr:`presets_package`, if there is one."""
        if self.presets_package is None:
            return {}
        import tomllib
        from importlib import resources

        path = resources.files(self.presets_package).joinpath("presets", f"{dataset}.toml")
        if not path.is_file():
            return {}
        return tomllib.loads(path.read_text(encoding="utf-8"))

    def real_batches_per_step(self, config: Any) -> int:
        """Real batches one training step of a model built from ``config`` consumes (its
        :attr:`GanModel.real_batches_per_step`), known without building it: the runner
        turns ``epochs`` into steps with it, and a resume checks the step count before
        any model exists. The default, 1, is one D update per G update."""
        return 1

    @abstractmethod
    def supported_resolutions(self) -> tuple[int, ...]:
        """Image resolutions the architecture can be built for."""

    def check(self, config: Any, shape: ImageShape) -> None:  # noqa: B027 (optional hook)
        """Refuse, with a one-line :class:`ganbench.errors.ConfigError` naming the fix, a
        ``config`` that cannot be built for images of ``shape`` (e.g. a network made for
        one resolution). Called when a run is planned, before anything is created; the
        default accepts everything :meth:`supported_resolutions` allows."""

    @abstractmethod
    def build(self, config: Any, shape: ImageShape) -> GanModel:
        """A freshly initialised model for images of ``shape`` (on the CPU)."""
