"""What an analysis gets to work with: the run's networks, data, latents and progress bars.

The core builds one :class:`AnalysisContext` per ``ganbench analyze`` call; analyses (built
in or third-party) ask it for what they need instead of opening runs, datasets or
extractors themselves, so every analysis reads the same weights, the same data and the
same latents as the rest of ganbench.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import DatasetRequest, GanModel, ImageArray, ImageShape
from ganbench.progress import ItemProgress

if TYPE_CHECKING:
    from ganbench.plugins import Registries
    from ganbench.plugins.interfaces import Architecture, LoadedExtractor
    from ganbench.training.plan import RunPlan


def prior_latents(z_dim: int, distribution: str, n: int, seed: int) -> torch.Tensor:
    """``n`` latents (float32, n x z_dim, on the CPU) from NumPy's PCG64 seeded with ``seed``.

    The same numbers as ``ganbench zoo sample --seed S`` draws for the run's exported
    generator (``ganbench.zoo.runtime.latents``), so sample ``i`` of ``analyze RUN samples
    --seed S`` is sample ``i`` of the zoo file, and the first ``k`` of ``n`` latents do not
    depend on ``n``.
    """
    from ganbench.zoo.runtime import prior_latents as numpy_latents

    return torch.from_numpy(numpy_latents(z_dim, distribution, n, seed))


@dataclass
class AnalysisContext:
    """The run being analysed, on ``device``, and ways to get what an analysis needs."""

    name: str
    model: GanModel
    architecture: Architecture
    model_config: Any
    shape: ImageShape
    #: The run's plan; None for a generator file (no dataset or training settings).
    plan: RunPlan | None
    step: int
    #: Where the weights came from (``runs:/ID/checkpoints/last.pt`` or a path).
    source: str
    has_discriminator: bool
    device: torch.device
    seed: int
    registries: Registries
    progress: bool = True
    say: Callable[[str], None] = print
    data_root: str | None = None
    cache_dir: str | None = None
    bad_images: str = "skip"
    inception_weights: str | None = None
    #: A conditional model's class for every generated image (``--class``); None draws
    #: each image's class uniformly (seeded with :attr:`seed`).
    class_label: int | None = None
    _images: dict[str, ImageArray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        k = self.model.num_classes
        if self.class_label is not None and not k:
            raise UsageError(
                f"{self.source} is an unconditional generator: it takes no class; drop --class"
            )
        if self.class_label is not None and not 0 <= self.class_label < k:
            raise UsageError(
                f"--class {self.class_label}: the generator makes classes 0 to {k - 1};"
                " give one of them"
            )

    # -- networks -------------------------------------------------------------------------
    @property
    def generator(self) -> torch.nn.Module:
        """The run's generator on the device, in eval mode (batchnorm running statistics):
        its moving average where the run kept one (what it sampled and scored)."""
        return self.model.sampler

    @property
    def discriminator(self) -> torch.nn.Module:
        """The run's trained discriminator on the device, in eval mode."""
        if not self.has_discriminator:
            raise UsageError(
                f"{self.source} holds the generator only; {self.name} needs the trained"
                " discriminator: give the run ID or its checkpoints/last.pt"
            )
        return self.model.discriminator

    def random_model(self, seed: int | None = None) -> GanModel:
        """A freshly initialised model of the same architecture and size (the paper's
        random-init control), on the device, in eval mode."""
        torch.manual_seed(self.seed if seed is None else seed)
        model = self.architecture.build(self.model_config, self.shape).to(self.device)
        model.generator.eval()
        model.discriminator.eval()
        return model

    # -- latents and images ----------------------------------------------------------------
    def latents(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` latents of the run's prior for ``seed`` (default: ``--seed``), on the CPU."""
        return prior_latents(
            self.model.z_dim, self.model.latent_distribution, n, self.seed if seed is None else seed
        )

    def labels(self, n: int) -> torch.Tensor | None:
        """Classes of ``n`` generated images (int64, CPU): ``--class`` for all, else
        uniform as ``zoo sample --seed`` draws them for the exported file (so sample ``i``
        is the same image); None when unconditional."""
        from ganbench.zoo.runtime import prior_labels

        k = self.model.num_classes
        if not k:
            return None
        if self.class_label is not None:
            return torch.full((n,), self.class_label, dtype=torch.int64)
        return torch.from_numpy(prior_labels(k, n, self.seed))

    @torch.no_grad()
    def generate(
        self, z: torch.Tensor, batch_size: int = 256, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Images in [-1, 1] (float32, on the CPU) for latents ``z`` (and classes
        ``labels`` of a conditional model; default :meth:`labels`), in batches."""
        y = labels if labels is not None else self.labels(len(z))
        parts = [
            self.model.generate(
                z[i : i + batch_size].to(self.device),
                None if y is None else y[i : i + batch_size].to(self.device),
            )
            .float()
            .cpu()
            for i in range(0, len(z), batch_size)
        ]
        return torch.cat(parts) if parts else torch.empty(0, *self.image_dims)

    @property
    def image_dims(self) -> tuple[int, int, int]:
        return (self.shape.channels, self.shape.resolution, self.shape.resolution)

    def bar(self, total: int, description: str, unit: str = "img") -> ItemProgress:
        """A progress bar with rate and ETA (silent with ``--no-progress``)."""
        return ItemProgress(total, description, unit=unit, enabled=self.progress)

    # -- data -----------------------------------------------------------------------------
    def _plan(self, what: str) -> RunPlan:
        if self.plan is None:
            raise UsageError(
                f"{self.source} is a generator file with no dataset; {self.name} needs the"
                f" run's {what}: give the run ID or a training checkpoint"
            )
        return self.plan

    def images(self, split: str | None = None) -> ImageArray:
        """A split of the run's dataset at the run's resolution (default: the training
        split), uint8 N x C x H x W, through the prepared cache (memory-mapped)."""
        from ganbench.data.loading import load_images
        from ganbench.data.paths import cache_root

        plan = self._plan("training data")
        split = split or plan.train.split
        if split not in self._images:
            plan.dataset.check_split(split)
            options = {"category": plan.train.category} if plan.train.category else {}
            request = DatasetRequest(split, plan.train.resolution, self.data_root, options)
            self._images[split] = load_images(
                plan.dataset,
                request,
                cache_root(self.cache_dir),
                bad_images=self.bad_images,  # type: ignore[arg-type]
                progress=self.progress,
                say=self.say,
            )
        return self._images[split]

    def held_out_split(self) -> str | None:
        """A split of the dataset the run did not train on (``test``, ``val``...), if any."""
        plan = self._plan("held-out data")
        others = [s for s in plan.dataset.splits if s != plan.train.split]
        preferred = [s for s in ("test", "val", "valid", "validation") if s in others]
        return (preferred or others or [None])[0]

    def extractor(self, name: str | None = None) -> tuple[str, LoadedExtractor]:
        """The run's feature extractor (its ``eval_extractor``, else the dataset's default)
        loaded on the device (Inception's weights from ``--inception-weights``)."""
        plan = self._plan("feature extractor")
        name = name or plan.train.eval_extractor or plan.dataset.default_extractor
        extractor = self.registries.extractors.get(name)
        weights = self.inception_weights if name == "inception-v3" else None
        return name, extractor.load(weights, self.device)


def as_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float images to uint8 NumPy arrays (rounded as saved PNGs are)."""
    from ganbench.metrics.features import to_uint8

    return to_uint8(images).cpu().numpy()
