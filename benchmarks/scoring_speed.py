"""Scoring speed: the Frechet distance against ``scipy.linalg.sqrtm``, and a whole FID
evaluation against a plain ``torch_fidelity.calculate_metrics`` call on the same generator.

No Inception weights can be downloaded here, so both sides use the same randomly
initialised Inception-v3 (He-normal convolutions, as the tests do): the cost of a forward
pass does not depend on the weights' values.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def frechet(dim: int = 2048, rows: int = 10_000, repeats: int = 3) -> dict:
    """ganbench's Frechet distance (cached sqrt of the reference covariance, one symmetric
    eigenproblem) against pytorch-fid's formula with ``scipy.linalg.sqrtm``, float64."""
    from scipy import linalg

    from ganbench.metrics.frechet import frechet_distance, gaussian_stats, psd_sqrt

    rng = np.random.default_rng(0)
    mix = rng.standard_normal((dim, dim)) / dim**0.5
    a = rng.standard_normal((rows, dim)) @ mix
    b = rng.standard_normal((rows, dim)) @ (mix + 0.1 * rng.standard_normal((dim, dim)) / dim**0.5)
    (mu1, s1), (mu2, s2) = gaussian_stats(a), gaussian_stats(b)

    def scipy_fid() -> float:
        covmean = linalg.sqrtm(s1 @ s2).real  # no disp=: scipy 1.18 removed it
        diff = mu1 - mu2
        return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

    def best(fn):
        times, value = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - start)
        return min(times), value

    t_scipy, v_scipy = best(scipy_fid)
    t_cold, _v_cold = best(lambda: frechet_distance(mu1, s1, mu2, s2))
    root = psd_sqrt(s1)  # cached with the real statistics
    t_cached, v_cached = best(lambda: frechet_distance(mu1, s1, mu2, s2, sigma1_sqrt=root))
    return {
        "dim": dim,
        "scipy_sqrtm_s": t_scipy,
        "ganbench_uncached_s": t_cold,
        "ganbench_cached_s": t_cached,
        "speedup_cached": t_scipy / t_cached,
        "speedup_uncached": t_scipy / t_cold,
        "fid_scipy": v_scipy,
        "fid_ganbench": v_cached,
        "relative_difference": abs(v_cached - v_scipy) / abs(v_scipy),
    }


def random_inception_weights(folder: Path) -> Path:
    """torch-fidelity's Inception-v3 at a random initialisation, saved as a weights file.

    He-normal convolutions keep the activations' scale through the ReLUs (PyTorch's default
    init shrinks them layer by layer until every image gives the same features, and every
    FID is 0); batch norm stays at identity statistics. The tests use it too.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = folder / "empty.pth"
    torch.save({}, empty)
    torch.manual_seed(0)
    net = Unloaded("random", ["2048"], feature_extractor_weights_path=str(empty))
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = folder / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path


class TensorImages(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class _Uint8Generator(torch.nn.Module):
    """A DCGAN generator as torch-fidelity wants one: z in [0, 1) -> uint8 images."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = self.generator(z * 2 - 1)
        return ((images + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


def fid_evaluation(device: torch.device, samples: int, resolution: int = 64) -> dict:
    """Wall time of FID on ``samples`` generated images against as many real ones:
    ganbench (real statistics cached beforehand, as ``eval`` and ``--eval-every`` reuse
    them) vs one plain torch-fidelity call that computes both sides; then both on the same
    uint8 images, for the agreement of the values."""
    import torch_fidelity
    from torch_fidelity.generative_model_modulewrapper import GenerativeModelModuleWrapper

    from ganbench.metrics.features import generated_features, image_features
    from ganbench.metrics.frechet import frechet_distance, gaussian_stats, psd_sqrt
    from ganbench.plugins import load_registries
    from ganbench.plugins.interfaces import ImageShape

    registries = load_registries()
    arch = registries.architectures.get("dcgan")
    torch.manual_seed(0)
    generator = arch.build(arch.config_class(), ImageShape(3, resolution)).generator
    generator.to(device).eval()
    rng = np.random.default_rng(1)
    real = torch.from_numpy(rng.integers(0, 256, (samples, 3, resolution, resolution), np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        weights = random_inception_weights(Path(tmp))
        extractor = registries.extractors.get("inception-v3").load(str(weights), device)
        real_pool = image_features(extractor, real.numpy(), device, progress=False)["pool"]
        mu_r, s_r = gaussian_stats(real_pool)
        root = psd_sqrt(s_r)

        gen = torch.Generator().manual_seed(0)

        def sample(n: int) -> torch.Tensor:
            with torch.no_grad():
                return generator((torch.rand(n, 100, generator=gen) * 2 - 1).to(device))

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        sync()
        start = time.perf_counter()
        fake_pool = generated_features(extractor, sample, samples, progress=False)["pool"]
        mu_f, s_f = gaussian_stats(fake_pool)
        ours = frechet_distance(mu_r, s_r, mu_f, s_f, sigma1_sqrt=root)
        sync()
        t_ours = time.perf_counter() - start

        common = {
            "cuda": device.type == "cuda",
            "batch_size": 200,
            "fid": True,
            "feature_extractor": "inception-v3-compat",
            "feature_extractor_weights_path": str(weights),
            "cache": False,
            "verbose": False,
        }
        wrapped = GenerativeModelModuleWrapper(_Uint8Generator(generator), 100, "uniform_0_1", 0)
        start = time.perf_counter()
        plain = torch_fidelity.calculate_metrics(
            input1=wrapped, input1_model_num_samples=samples, input2=TensorImages(real), **common
        )["frechet_inception_distance"]
        t_plain = time.perf_counter() - start

        # Agreement on identical images: the generated images of ganbench's run, as uint8.
        gen = torch.Generator().manual_seed(0)
        fake_u8 = torch.cat(
            [((sample(200) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).cpu()
             for _ in range(-(-samples // 200))]
        )[:samples]  # fmt: skip
        same_ours = frechet_distance(
            mu_r,
            s_r,
            *gaussian_stats(
                image_features(extractor, fake_u8.numpy(), device, progress=False)["pool"]
            ),
            sigma1_sqrt=root,
        )
        same_tf = torch_fidelity.calculate_metrics(
            input1=TensorImages(fake_u8), input2=TensorImages(real), **common
        )["frechet_inception_distance"]
    return {
        "samples": samples,
        "resolution": resolution,
        "ganbench_s": t_ours,
        "torch_fidelity_s": t_plain,
        "speedup": t_plain / t_ours,
        "fid_ganbench": ours,
        "fid_torch_fidelity_other_latents": plain,
        "fid_same_images_ganbench": same_ours,
        "fid_same_images_torch_fidelity": same_tf,
        "relative_difference_same_images": abs(same_ours - same_tf) / abs(same_tf),
    }
