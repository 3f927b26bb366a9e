"""A scorer set up once (extractor loaded, real statistics cached) and used at any step.

Training with ``--eval-every`` and ``ganbench eval`` share it, so a score during training
and a score afterwards are computed the same way and carry the same names.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ganbench.data.prepare import BadImagePolicy
from ganbench.errors import UsageError
from ganbench.metrics.conditional import (
    check_conditional_plan,
    check_generated_share,
    check_model_classes,
    check_real_classes,
    conditional_metrics,
)
from ganbench.metrics.counts import (
    EVAL_FIX,
    REAL_FIX,
    check_covariance_counts,
    warn_few_samples,
)
from ganbench.metrics.features import Sampler, generator_sampler
from ganbench.metrics.reference import Reference, reference_stats
from ganbench.metrics.scoring import Evaluation, evaluate, metric_name
from ganbench.plugins.interfaces import (
    FeatureExtractor,
    GanModel,
    LoadedExtractor,
    Metric,
    RealStats,
)

if TYPE_CHECKING:
    from ganbench.training.plan import RunPlan

#: The literature's sample count for FID (and ganbench's default for ``eval``).
DEFAULT_SAMPLES = 50_000


def parse_metric_names(text: str, known: Sequence[str]) -> list[str]:
    """``"fid,is"`` -> ["fid", "is"]; unknown names fail with the close matches."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"no metric given; use one or more of {', '.join(known)}")
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise UsageError(f"unknown metric {name!r}.{hint} Available: {', '.join(known)}")
    return list(dict.fromkeys(names))


@dataclass
class Scorer:
    metrics: list[Metric]
    extractor: FeatureExtractor
    loaded: LoadedExtractor
    real: RealStats | None
    reference: Reference | None
    samples: int
    seed: int
    device: torch.device
    batch_size: int = 200
    progress: bool = True
    #: The dataset's name and class count (0: unlabelled), to check a model's classes.
    dataset: str = ""
    dataset_classes: int = 0

    def score(self, model: GanModel, generator_source: str) -> Evaluation:
        """Scores of ``model``'s generator (the same latents for every call: its seed)."""
        result = self.score_shared(model, generator_source, None)
        assert result is not None
        return result

    def score_shared(
        self, model: GanModel, generator_source: str, replicas: Any
    ) -> Evaluation | None:
        """:meth:`score` in a distributed run: every rank generates and extracts its
        share of the samples; rank 0 gets the scores, the others None. Conditional
        metrics of an unconditional model (or of other classes than the dataset's) are
        refused before any image is drawn."""
        self.check_model(model)
        sample = generator_sampler(model, self.device, self.seed)
        result = self.score_sampler(sample, generator_source, replicas)
        if result is not None:  # which of the run's generators made the images
            for how in result.provenance.values():
                how["sampler"] = sampler_words(model)
        return result

    def check_model(self, model: GanModel) -> None:
        """Refuse conditional metrics of an unconditional model (or of other classes than
        the dataset's); a training run asks before its first step."""
        check_model_classes(self.metrics, model.num_classes, self.dataset_classes, self.dataset)

    def score_sampler(
        self, sample: Sampler, generator_source: str, replicas: Any = None
    ) -> Evaluation | None:
        """Scores of the images ``sample`` draws (e.g. an exported file's, in onnxruntime;
        (images, labels) for the conditional metrics)."""
        return evaluate(
            self.metrics,
            self.extractor,
            self.loaded,
            sample,
            self.samples,
            self.real,
            self.reference,
            seed=self.seed,
            generator_source=generator_source,
            batch_size=self.batch_size,
            progress=self.progress,
            replicas=replicas,
        )

    def fid_name(self) -> str | None:
        """The FID metric's name (the best checkpoint is chosen on it), if FID is scored."""
        if any(m.name == "fid" for m in self.metrics):
            return metric_name("fid", self.samples, self.extractor.name)
        return None


def sampler_words(model: GanModel) -> str:
    """Which generator a score comes from, in words (provenance, tags, reports)."""
    if model.averaged_generator is None:
        return "generator G"
    return "G's exponential moving average (ema)"


def make_scorer(
    registries: object,
    plan: RunPlan,
    *,
    data_root: str | None,
    cache_dir: str | None,
    metrics: str,
    extractor: str | None,
    inception_weights: str | None,
    samples: int,
    real_samples: int | None,
    device: torch.device,
    seed: int,
    bad_images: BadImagePolicy = "skip",
    progress: bool = True,
    say: Callable[[str], None] = print,
    split: str | None = None,
    samples_fix: str = EVAL_FIX,
    num_classes: int | None = None,
) -> Scorer:
    """Load the extractor and the real statistics (cached) of ``plan``'s dataset and
    ``split`` (None: the run's ``eval_split``, else the split it trains on).

    ``inception_weights`` (the flag or its environment variable) applies to Inception-v3
    only; other extractors ship their own weights. FID from no more samples than its
    feature's dimension is refused before any weights are loaded (``samples_fix`` says
    how to give more: {n} is the count); Inception-v3 FID from fewer than 10,000 is said.
    Conditional metrics (intra-FID, class accuracy) are refused as early: for an
    unlabelled dataset, a model of ``num_classes`` (None: the model is not known yet;
    :meth:`Scorer.score` checks it) that is unconditional or of other classes, an
    extractor that does not classify the dataset, or too few samples (or real images)
    of a class.
    """
    from ganbench.data.paths import cache_root

    dataset, cache = plan.dataset, cache_root(cache_dir)
    split = split or plan.train.eval_split or plan.train.split
    dataset.check_split(split)
    request = dataclasses.replace(plan.request(data_root), split=split)
    name = extractor or dataset.default_extractor
    weights = inception_weights if name == "inception-v3" else None
    if samples < 10:
        raise UsageError(f"the number of samples must be at least 10, not {samples}")
    if real_samples is not None and real_samples < 10:
        raise UsageError(f"the number of real samples must be at least 10, not {real_samples}")
    chosen = [
        registries.metrics.get(n) for n in parse_metric_names(metrics, registries.metrics.names())
    ]
    ext = registries.extractors.get(name)
    # Before the weights are loaded (or downloaded): the declared feature dimensions.
    check_covariance_counts(
        chosen, ext.name, ext.feature_dims, samples, real_samples, fix=samples_fix
    )
    check_conditional_plan(
        chosen,
        ext,
        dataset,
        samples,
        num_classes=num_classes,
        extractors=[registries.extractors.get(n) for n in registries.extractors.names()],
        fix=samples_fix,
    )
    warn_few_samples(chosen, ext.name, samples, say)
    loaded = ext.load(weights, device)
    real = reference = None
    if any(m.needs_real for m in chosen):
        real, reference = reference_stats(
            dataset,
            request,
            cache,
            ext,
            loaded,
            real_samples,
            device,
            bad_images=bad_images,
            progress=progress,
            say=say,
        )
        # The real features say the dimension of the weights loaded (an extractor may
        # declare none, or other weights may differ), and the whole split's size.
        whole = f"the whole {split} split has {real.count:,}: use a bigger split"
        check_covariance_counts(
            [m for m in chosen if m.feature == "pool"],
            ext.name,
            {"pool": real.features.shape[1]},
            samples,
            real.count,
            fix=samples_fix,
            real_fix=REAL_FIX if real_samples and real.count >= real_samples else whole,
        )
        if conditional_metrics(chosen):
            limited = real_samples and real.count >= real_samples
            per_class = (
                "give more --real-samples, or leave it out to use the whole split"
                if limited
                else f"the whole {split} split is too small: use a bigger split"
            )
            dim, classes = real.features.shape[1], dataset.num_classes or 0
            where = reference.describe()
            check_real_classes(chosen, ext.name, dim, real, classes, where, per_class)
            for metric in conditional_metrics(chosen):  # undeclared dimensions: now known
                if metric.fits_class_covariance:
                    check_generated_share(metric, ext.name, dim, samples, classes, samples_fix)
    return Scorer(
        chosen, ext, loaded, real, reference, samples, seed, device, progress=progress,
        dataset=dataset.name, dataset_classes=dataset.num_classes or 0,
    )  # fmt: skip
