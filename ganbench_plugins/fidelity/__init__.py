"""FID, IS, KID and precision/recall, with torch-fidelity as the engine, and its Inception-v3.

torch-fidelity supplies the Inception-v3 network (TF-compatible resizing and weights, the
reference implementation's numbers) and the IS, KID and precision/recall formulas, which
are called here on features ganbench extracts once and caches. The Frechet distance is
ganbench's own symmetric-eigenvalue computation (``ganbench.metrics.frechet``), checked
against torch-fidelity's in the tests: it can reuse the reference's cached square root.

torch-fidelity unpickles its weights file with ``torch.load(weights_only=False)``, which
runs any code a pickle carries, and a fresh download can be checked against only the 8 hex
digits of its sha256 that its name carries. So whatever file is given (``--inception-weights``,
``$GANBENCH_INCEPTION_WEIGHTS``, torch.hub's cache) is read here with ``weights_only=True``
and must be a plain state dict of tensors; torch-fidelity only sees a copy ganbench saved
from those tensors.

A class-conditional generator's intra-FID and class accuracy are registered here too
(:mod:`ganbench_plugins.fidelity.conditional`).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ganbench.errors import GanbenchError
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import (
    FeatureExtractor,
    LoadedExtractor,
    Metric,
    RealStats,
    RemoteFile,
)
from ganbench.plugins.registry import Registrar
from ganbench_plugins.fidelity.conditional import ClassAccuracy, IntraFid

if TYPE_CHECKING:
    import numpy as np
    import torch

# torch-fidelity 0.4's Inception-v3 weights (converted from TensorFlow's 2015-12-05 graph);
# the file name carries the first 8 hex digits of its sha256, checked after a download.
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_HASH_PREFIX = "6726825d"
INCEPTION_ENV = "GANBENCH_INCEPTION_WEIGHTS"


def default_inception_weights(progress: bool = True) -> Path:
    """torch-fidelity's weights in torch.hub's cache, downloaded there on first use.

    Through ganbench's downloader rather than ``torch.hub.download_url_to_file``, whose
    urllib follows an https -> http redirect silently: this one refuses it, checks the
    free space, resumes, and renames the file into place only once its sha256 starts with
    the 8 hex digits its name carries (the only digest published for it)."""
    import torch.hub

    from ganbench.data.download import download, file_digest
    from ganbench.errors import DownloadError
    from ganbench.files.sealed import commit_file

    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]
    if path.is_file():
        return path
    offline = (
        f"On an offline machine copy that file to {path} and pass --inception-weights PATH"
        f" or set {INCEPTION_ENV}=PATH"
    )
    remote = RemoteFile(INCEPTION_URL, f"{path.name}.unchecked")
    try:
        fetched = download(remote, path.parent, progress=progress)
    except DownloadError as exc:
        raise GanbenchError(
            f"cannot download the Inception-v3 weights from {INCEPTION_URL} ({exc}). {offline}"
        ) from None
    got = file_digest(fetched, "sha256")
    if not got.startswith(INCEPTION_HASH_PREFIX):
        fetched.unlink(missing_ok=True)
        raise GanbenchError(
            f"the Inception-v3 weights from {INCEPTION_URL} have sha256 {got}, which does not"
            f" start with {INCEPTION_HASH_PREFIX}; the download was deleted. {offline}"
        )
    commit_file(fetched, path)
    return path


def _refusal(exc: BaseException) -> str:
    """Why torch refused a file, on one short line (its messages span many)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = next((line for line in lines if "WeightsUnpickler error:" in line), "")
    if cause:
        cause = cause.split("WeightsUnpickler error:", 1)[1].split(". Please", 1)[0].strip()
        return f"it holds Python objects other than tensors, which could run code: {cause[:120]}"
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def safe_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors in ``path``, read without running any pickled code, and the sha256 of the
    bytes read; anything but a plain ``{name: tensor}`` state dict is refused."""
    import torch

    fix = f"download it again from {INCEPTION_URL}"
    data = path.read_bytes()
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, a pickle with code or foreign objects, ...
        raise GanbenchError(
            f"{path} is not usable Inception-v3 weights ({_refusal(exc)}); {fix}"
        ) from None
    plain = isinstance(obj, dict) and bool(obj)
    if not plain or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        what = type(obj).__name__ if not plain else "entries that are not tensors"
        raise GanbenchError(
            f"{path} is not usable Inception-v3 weights (not a plain state dict of tensors:"
            f" it holds {what}); {fix}"
        )
    return obj, hashlib.sha256(data).hexdigest()


class InceptionV3(FeatureExtractor):
    name = "inception-v3"
    summary = "torch-fidelity's Inception-v3 (TF 2015-12-05 weights): 2048-d pool, 1008 logits"
    resizer = "torch-fidelity TF1-compatible bilinear to 299x299; grey images repeated to RGB"
    weights_env = INCEPTION_ENV
    # torch-fidelity's "2048" and "logits_unbiased" outputs (checked against the network)
    feature_dims: ClassVar[dict[str, int]] = {"pool": 2048, "logits": 1008}

    def load(self, weights: str | None, device: torch.device) -> LoadedExtractor:
        path = Path(weights or os.environ.get(INCEPTION_ENV) or default_inception_weights())
        if not path.is_file():
            raise GanbenchError(
                f"Inception-v3 weights file {path} does not exist; pass --inception-weights"
                f" PATH (or {INCEPTION_ENV}) naming the file downloaded from {INCEPTION_URL}"
            )
        import torch
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        state, sha256 = safe_state_dict(path)
        try:
            with tempfile.TemporaryDirectory(prefix="ganbench-inception-") as tmp:
                verified = Path(tmp) / "inception.pth"
                torch.save(state, verified)  # tensors only: all torch-fidelity unpickles
                del state
                net = FeatureExtractorInceptionV3(
                    "inception-v3-compat",
                    ["2048", "logits_unbiased"],
                    feature_extractor_weights_path=str(verified),
                )
        except Exception as exc:  # another network's weights
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise GanbenchError(
                f"{path} is not usable Inception-v3 weights ({type(exc).__name__}: {first});"
                f" download it again from {INCEPTION_URL}"
            ) from None
        from ganbench_plugins.fidelity.inception import RgbInception

        module = RgbInception(net).to(device).eval()
        return LoadedExtractor(module, sha256, str(path))


def _tensor(x: np.ndarray) -> torch.Tensor:
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


class Fid(Metric):
    name = "fid"
    summary = "Frechet distance between Gaussians fitted to real and generated features"
    higher_is_better = False
    fits_covariance = True

    def compute(self, fake: np.ndarray, real: RealStats | None, seed: int) -> Mapping[str, float]:
        from ganbench.metrics.frechet import frechet_distance, gaussian_stats

        assert real is not None
        mu, sigma = gaussian_stats(fake)
        return {"fid": frechet_distance(real.mu, real.sigma, mu, sigma, real.sigma_sqrt)}


class InceptionScore(Metric):
    name = "is"
    summary = "Inception Score: exp E KL(p(y|x) || p(y)), 10 splits (torch-fidelity)"
    higher_is_better = True
    feature = "logits"
    needs_real = False

    def compute(self, fake: np.ndarray, real: RealStats | None, seed: int) -> Mapping[str, float]:
        from torch_fidelity.metric_isc import isc_features_to_metric

        out = isc_features_to_metric(_tensor(fake), splits=10, shuffle=True, rng_seed=seed)
        return {"is": out["inception_score_mean"], "is_std": out["inception_score_std"]}


class Kid(Metric):
    name = "kid"
    summary = (
        "Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel, 100 subsets of"
        " up to 1000 (torch-fidelity)"
    )
    higher_is_better = False

    def compute(self, fake: np.ndarray, real: RealStats | None, seed: int) -> Mapping[str, float]:
        from torch_fidelity.metric_kid import kid_features_to_metric

        assert real is not None
        size = min(1000, len(fake), real.count)
        # torch-fidelity's convention: features_1 generated (input1), features_2 real
        out = kid_features_to_metric(
            _tensor(fake),
            _tensor(real.features),
            kid_subset_size=size,
            rng_seed=seed,
            verbose=False,
        )
        return {
            "kid": out["kernel_inception_distance_mean"],
            "kid_std": out["kernel_inception_distance_std"],
        }


class PrecisionRecall(Metric):
    name = "prc"
    summary = (
        "improved precision and recall (Kynkaanniemi et al. 2019), k=3 nearest neighbours"
        " on the extractor's pool features (torch-fidelity)"
    )
    higher_is_better = True

    def compute(self, fake: np.ndarray, real: RealStats | None, seed: int) -> Mapping[str, float]:
        from torch_fidelity.metric_prc import prc_features_to_metric

        assert real is not None
        # torch-fidelity's convention: features_1 generated, features_2 real
        out = prc_features_to_metric(
            _tensor(fake), _tensor(real.features), save_cpu_ram=True, verbose=False
        )
        return {"precision": out["precision"], "recall": out["recall"], "f_score": out["f_score"]}


@hookimpl
def ganbench_register_extractors(registry: Registrar[FeatureExtractor]) -> None:
    registry.add(InceptionV3())


@hookimpl
def ganbench_register_metrics(registry: Registrar[Metric]) -> None:
    for metric in (Fid(), InceptionScore(), Kid(), PrecisionRecall(), IntraFid(), ClassAccuracy()):
        registry.add(metric)
