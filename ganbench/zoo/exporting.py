"""``zoo export`` and ``zoo publish``: from a run to a checked ONNX file, card and entry.

Everything is built in a temporary folder beside the output and moved into place only
when the export, the checker, the parity check and the scoring have all passed, so a
failed export leaves the zoo folder and its index as they were.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.data.download import file_digest
from ganbench.files.sealed import commit_file
from ganbench.zoo.fidelity_file import NP_INT_NOTE, FidelityFile, shimmed_command
from ganbench.zoo.flavours import TORCH_FIDELITY
from ganbench.zoo.metadata import GeneratorInfo, Score

if TYPE_CHECKING:
    from ganbench.runs.reopen import LoadedRun, Which
    from ganbench.runs.weights import RunWeights

#: Samples shown in the model card (8 x 8), drawn with this seed by onnxruntime.
CARD_SAMPLES, CARD_SEED = 64, 0


@dataclass
class Exported:
    """A checked ONNX file with its picture and card, still in the temporary folder."""

    onnx: Path
    picture: Path
    info: GeneratorInfo
    sha256: str
    size: int
    citation: str
    provider: str
    #: The run's hyperparameters as a ``--config`` TOML file, to train it again.
    config: str
    #: ``--for torch-fidelity``: the flavour file beside ``onnx`` (url: its file name).
    fidelity: FidelityFile | None = None

    def card(self) -> str:
        """The Markdown model card, its picture beside it as NAME.png."""
        from ganbench.zoo.card import render_card

        return render_card(
            self.info,
            picture=f"{self.info.name}.png",
            sha256=self.sha256,
            size=self.size,
            citation=self.citation,
            sample_seed=CARD_SEED,
            provider=self.provider,
            config=self.config,
            fidelity=self.fidelity,
        )


def _fresh_scores(
    loaded: LoadedRun,
    weights: RunWeights,
    onnx_path: Path,
    *,
    samples: int,
    metrics: str,
    seed: int,
    data_root: str | None,
    bad_images: str,
    progress: bool,
    say: Callable[[str], None],
) -> tuple[Score, ...]:
    """Scores of the exported file itself: its images come from onnxruntime, for the
    latents and then the labels (a conditional model's) that ``ganbench eval`` draws
    (``ganbench.metrics.features.generator_sampler``: one seeded torch.Generator), so the
    two score the same images."""
    import onnxruntime as ort
    import torch

    from ganbench.metrics.session import make_scorer
    from ganbench.zoo import scores

    torch_device = weights.torch_device
    scorer = make_scorer(
        weights.registries,
        loaded.plan,
        data_root=data_root,
        cache_dir=weights.cache_dir,
        metrics=metrics,
        extractor=None,
        inception_weights=None,
        samples=samples,
        real_samples=None,
        device=torch_device,
        seed=seed,
        bad_images=bad_images,  # type: ignore[arg-type]
        progress=progress,
        say=say,
        samples_fix="--eval-samples {n}",
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = torch.Generator().manual_seed(seed)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = loaded.model.sample_latent(n, generator=rng)
        y = loaded.model.sample_labels(n, generator=rng)
        feed = {"z": z.numpy()} | ({} if y is None else {"y": y.numpy()})
        images = torch.from_numpy(session.run(["images"], feed)[0]).to(torch_device)
        return images, None if y is None else y.to(torch_device)

    result = scorer.score_sampler(sample, "the exported ONNX file, run by onnxruntime")
    return scores.from_values(result.scores, result.provenance)


def build(
    run_ref: str,
    folder: Path,
    *,
    name: str,
    checkpoint: Which,
    opset: int,
    eval_samples: int | None,
    metrics: str,
    device: str,
    data_root: str | None,
    cache_dir: str | None,
    bad_images: str,
    tracking_uri: str | None,
    progress: bool,
    say: Callable[[str], None],
    flavours: Sequence[str] = (),
) -> Exported:
    """Export, check, score and draw ``run_ref``'s generator into ``folder``; ``flavours``
    (``torch-fidelity``) adds files for other tools beside it."""
    from ganbench.images import grid, square_rows, to_uint8
    from ganbench.runs.weights import RunWeights
    from ganbench.zoo import export, scores
    from ganbench.zoo.index import check_name
    from ganbench.zoo.runtime import labels, latents, open_generator

    check_name(name)
    if eval_samples is not None and eval_samples < 10:
        from ganbench.errors import UsageError

        raise UsageError(f"--eval-samples must be at least 10, not {eval_samples}")
    weights = RunWeights(run_ref, checkpoint, tracking_uri, cache_dir, device, say)
    loaded, target = weights.open()
    measured: tuple[Score, ...] = ()
    if not eval_samples and target is not None:
        # Before any work: a store that is away stops the export here, in one line.
        measured = scores.of_run(target, loaded.step, weights.cache, say)
    # The generator that samples: the run's moving average of G where it kept one.
    generator, classes = loaded.model.sampler, loaded.model.num_classes
    kind = "the moving average of G (ema)" if loaded.generator == "ema" else "G (live)"
    conditional = f", class-conditional on {classes} classes" if classes else ""
    say(
        f"exporting {kind}{conditional} of {loaded.source} (step {loaded.step}) to ONNX"
        f" opset {opset}"
    )
    raw = folder / "raw.onnx"
    export.export_onnx(generator, loaded.model.z_dim, raw, opset, num_classes=classes)
    parity = export.check_parity(
        generator, raw, loaded.model.z_dim, atol=export.PARITY_ATOL, num_classes=classes
    )
    say(parity.describe())
    if eval_samples:
        measured = _fresh_scores(
            loaded, weights, raw, samples=eval_samples, metrics=metrics, seed=0,
            data_root=data_root, bad_images=bad_images, progress=progress, say=say,
        )  # fmt: skip
    if not measured:
        say("no scores at this checkpoint: add --eval-samples N to measure them")
    info = export.generator_info(loaded, name, opset, parity, measured)
    final = folder / f"{name}.onnx"
    export.write_metadata(raw, final, info)
    raw.unlink()
    runtime = open_generator(final, "cpu", say=say)  # the card shows what users will get
    drawn = runtime.generate(
        latents(info, CARD_SAMPLES, CARD_SEED), labels(info, CARD_SAMPLES, CARD_SEED)
    )
    images = to_uint8(drawn, info.output_range)
    picture = folder / f"{name}.png"
    grid(square_rows(images, 8)).save(picture)
    fidelity = None
    if TORCH_FIDELITY in flavours:
        from ganbench.zoo.flavours import write_torch_fidelity

        _, fidelity = write_torch_fidelity(final)
        labels_too = f" and {classes}-class labels" if classes else ""
        say(
            f"torch-fidelity flavour: {fidelity.url}, uint8 RGB from {fidelity.z_type}"
            f" noise{labels_too}"
        )
    return Exported(
        final,
        picture,
        info,
        file_digest(final, "sha256"),
        final.stat().st_size,
        loaded.plan.dataset.citation,
        runtime.provider,
        _config_toml(loaded.plan),
        fidelity,
    )


def _config_toml(plan: Any) -> str:
    """Every hyperparameter of ``plan`` that ``ganbench run --config`` takes."""
    import tomli_w

    values = {**dataclasses.asdict(plan.train), **dataclasses.asdict(plan.model)}
    return tomli_w.dumps({k: v for k, v in values.items() if v is not None and v != ""})


def _relative_url(target: Path, index_path: Path) -> str:
    return Path(os.path.relpath(target.resolve(), index_path.resolve().parent)).as_posix()


def export_to_folder(
    run_ref: str,
    out_dir: Path,
    index_path: Path | None,
    url: str | None,
    *,
    say: Callable[[str], None],
    **options: Any,
) -> list[str]:
    """``zoo export``: NAME.onnx, NAME.png and NAME.md in ``out_dir``, and the index entry."""
    from ganbench.zoo.index import ZooEntry, upsert

    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = index_path or out_dir / "index.toml"
    try:
        with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir) as tmp:
            done, targets = _built_into(run_ref, Path(tmp), out_dir, say, options)
    except BaseException:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a failed export leaves no trace, not even an empty folder
        raise
    name = done.info.name
    entry = ZooEntry(
        done.info,
        url or _relative_url(out_dir / f"{name}.onnx", index_path),
        done.sha256,
        done.size,
        card=_relative_url(out_dir / f"{name}.md", index_path),
        picture=_relative_url(out_dir / f"{name}.png", index_path),
        torch_fidelity=_listed(done.fidelity, out_dir, index_path, url),
    )
    replaced = upsert(index_path, entry)
    lines = [f"wrote {target}" for target in targets]
    lines.append(f"{'replaced' if replaced else 'added'} {name} in {index_path}")
    lines.append(f"sha256 {done.sha256}, {done.size:,} bytes")
    if done.fidelity:
        command = done.fidelity.command(out_dir / done.fidelity.url)
        lines.append(f"score it with torch-fidelity: {command}")
        if done.fidelity.num_classes:
            lines.append(f"({NP_INT_NOTE}: {shimmed_command(command)})")
    return lines


def _built_into(
    run_ref: str, tmp: Path, out_dir: Path, say: Callable[[str], None], options: dict[str, Any]
) -> tuple[Exported, list[Path]]:
    """Build in ``tmp`` (beside ``out_dir``), then move the files into ``out_dir``."""
    done = build(run_ref, tmp, say=say, **options)
    card = tmp / f"{done.info.name}.md"
    card.write_text(done.card(), encoding="utf-8")
    files = [done.onnx, done.picture, card]
    files += [tmp / done.fidelity.url] if done.fidelity else []
    targets = []
    for source in files:
        commit_file(source, out_dir / source.name)
        targets.append(out_dir / source.name)
    return done, targets


def _listed(
    fidelity: FidelityFile | None, out_dir: Path, index_path: Path, url: str | None
) -> FidelityFile | None:
    """The flavour file's index listing: beside the plain file's ``url`` when one is given."""
    if fidelity is None:
        return None
    where = (
        urllib.parse.urljoin(url, fidelity.url)
        if url
        else _relative_url(out_dir / fidelity.url, index_path)
    )
    return dataclasses.replace(fidelity, url=where)


def publish_to_registry(
    run_ref: str,
    registry_flag: str | None,
    aliases: Sequence[str],
    index_path: Path | None,
    *,
    say: Callable[[str], None],
    **options: Any,
) -> list[str]:
    """``zoo publish``: export, then register in an MLflow registry with aliases."""
    from ganbench.data.paths import cache_root
    from ganbench.errors import UsageError
    from ganbench.runs.target import locate
    from ganbench.tracking.tracker import check_reachable, resolve_tracking_uri
    from ganbench.zoo.index import ZooEntry, upsert
    from ganbench.zoo.registry import publish, registry_uri

    bad = [a for a in aliases if a == "latest" or (a[:1] == "v" and a[1:].isdigit())]
    if bad or not aliases:
        raise UsageError(
            f"alias {bad[0]!r} is reserved by MLflow; choose another (e.g. champion)"
            if bad
            else "give at least one --alias"
        )
    registry = registry_uri(registry_flag)
    target = locate(run_ref, options.get("tracking_uri"), cache_root(options.get("cache_dir")))
    tracking = target.tracking_uri if target else resolve_tracking_uri(options.get("tracking_uri"))
    # Before the export's work, not after it: publishing writes into both stores at once
    # (a registered version is the command's product, not a record to deliver later).
    check_reachable(tracking)
    check_reachable(registry)
    with tempfile.TemporaryDirectory(prefix="ganbench-publish-") as tmp:
        done = build(run_ref, Path(tmp), say=say, **options)
        card = done.card()
        run_id = target.run_id if target else None
        version = publish(
            done.onnx, done.info, card, aliases=aliases, registry=registry, tracking=tracking,
            run_id=run_id,
        )  # fmt: skip
    lines = [
        f"registered {version.name} version {version.version} in {registry}"
        f" (run {version.run_id}); aliases: {', '.join(version.aliases)}",
        f"pull it with: ganbench zoo pull {version.uri} --registry {registry}",
    ]
    if index_path is not None:
        entry = ZooEntry(done.info, version.uri, version.sha256, version.size)
        replaced = upsert(index_path, entry)
        lines.append(f"{'replaced' if replaced else 'added'} {version.name} in {index_path}")
    return lines
