"""Before a study starts anything: every variant resolves, every dataset is prepared.

A misspelt setting in the ninth variant must fail now, in one line, not after eight
variants' worth of training; and the trials must not all prepare the same dataset cache at
once (the first would write it while the others wait).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganbench.errors import GanbenchError, UnknownNameError
from ganbench.study.spec import Study


def _plan(
    registries: Any,
    study: Study,
    dataset: str,
    settings: dict[str, Any],
    architecture: str | None = None,
) -> Any:
    from ganbench.training.plan import plan_run

    layers = [(f"study {study.name}", {k: str(v) for k, v in settings.items()})]
    return plan_run(registries, architecture or study.architecture, dataset, layers)


def check_study(study: Study, nproc: int | None = None, gpu: bool = False) -> Any:
    """Resolve every (variant, dataset), and with ``nproc`` check that each can run on that
    many processes (its global batch splits evenly); returns the plugin registries."""
    from ganbench.plugins import load_registries
    from ganbench.training.distributed import check_settings

    registries = load_registries()
    for variant in study.variants:
        arch = study.architecture_of(variant)
        if variant in study.architectures:  # the plugin named in the variant's table
            try:
                registries.architectures.get(arch)
            except UnknownNameError as exc:
                exc.args = (f"study {study.name}, variant {variant!r}: {exc}",)
                raise
        for dataset in study.datasets:
            try:
                plan = _plan(
                    registries, study, dataset, study.trial_settings(variant, dataset), arch
                )
                if nproc:
                    check_settings(plan.train.batch_size, plan.train.sync_bn, nproc, gpu)
            except UnknownNameError:
                raise  # an unknown dataset or architecture: its own message says it all
            except GanbenchError as exc:
                exc.args = (f"study {study.name}, variant {variant!r}: {exc}",)
                raise
    if study.per_variant_search:
        spaces = [(v, study.search_space(v)) for v in study.variants]
    else:  # one space for the whole study, on its architecture
        spaces = [(None, study.search)]
    for variant, space in spaces:
        first = study.datasets[0]
        base = study.trial_settings(variant, first) if variant else study.base_settings(first)
        arch = study.architecture_of(variant) if variant else study.architecture
        for key, spec in space.items():
            low = spec["choices"][0] if "choices" in spec else spec["low"]
            try:
                _plan(registries, study, study.datasets[0], {**base, key: low}, arch)
            except GanbenchError as exc:
                where = f"variant {variant!r}, " if variant else ""
                exc.args = (f"study {study.name}, {where}search range {key!r}: {exc}",)
                raise
    return registries


def prepare_data(
    registries: Any,
    study: Study,
    data_root: str | None,
    cache_dir: str,
    bad_images: str,
    *,
    progress: bool,
    say: Callable[[str], None],
) -> None:
    """Prepare each dataset (and its reference statistics) once, here, on the CPU."""
    import torch

    from ganbench.training.launch import DataOptions, prepare

    options = DataOptions(data_root, cache_dir, bad_images, None)
    # One variant per architecture: a plugin's preset may ask for other data (resolution).
    firsts: dict[str, str] = {}
    for variant in study.variants:
        firsts.setdefault(study.architecture_of(variant), variant)
    for dataset in study.datasets:
        for arch, variant in firsts.items():
            plan = _plan(registries, study, dataset, study.trial_settings(variant, dataset), arch)
            prepare(registries, plan, options, torch.device("cpu"), progress=progress, say=say)
