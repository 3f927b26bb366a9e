"""The runner's own settings: how long, how big, how often to log. Not the model's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganbench.errors import ConfigError
from ganbench.hparams import check_ranges, ranged

#: The three ways to give the length of training: one per layer of settings, and the
#: later-given one decides (training.plan, and a study's settings layers).
LENGTH_KEYS = ("steps", "epochs", "d_steps")

#: The operations a policy may name, in the reference's ``AUGMENT_FNS`` order.
POLICY_OPS: tuple[str, ...] = ("color", "translation", "cutout")


def parse_policy(text: str, *, setting: str = "diffaugment") -> tuple[str, ...]:
    """``"color,translation,cutout"`` (any subset, in the order applied) as a tuple; ``""``
    is the empty policy. ``setting`` names the configuration key in error messages."""
    text = text.strip()
    if not text or text.lower() == "none":
        return ()
    names = tuple(name.strip() for name in text.split(","))
    allowed = ", ".join(POLICY_OPS)
    for name in names:
        if name not in POLICY_OPS:
            raise ConfigError(
                f"{setting}: unknown DiffAugment operation {name!r} in {text!r};"
                f" use a comma-separated subset of {allowed} (or '' for none)"
            )
    if len(set(names)) != len(names):
        raise ConfigError(
            f"{setting}: {text!r} names an operation twice; name each of {allowed} once"
        )
    return names


@dataclass
class TrainConfig:
    """Run settings shared by every architecture (an architecture may change the defaults)."""

    #: Image size; None takes the dataset's default resolution.
    resolution: int | None = ranged(None, ge=1)
    batch_size: int = ranged(64, ge=1)
    #: Length of training in steps (G updates). steps, epochs and d_steps are three ways
    #: to give the length: one layer gives at most one, and the later-given one decides.
    steps: int | None = ranged(None, ge=1)
    #: Passes over the split (25 is the PyTorch DCGAN reference's default), counted in
    #: real images: an architecture whose step takes n batches (WGAN-GP's 5 critic
    #: updates) makes an epoch 1/n as many steps.
    epochs: float | None = ranged(25.0, gt=0)
    #: Length of training in D updates = real batches (Lucic et al.'s budget, "Are GANs
    #: Created Equal?"): ceil(d_steps / n) steps for an architecture whose step takes n
    #: batches, so every GAN sees the same number of real batches whatever its n_critic.
    d_steps: int | None = ranged(None, ge=1)
    #: Seeds the weights, the data order and the samples (NumPy's generator takes 32 bits).
    seed: int = ranged(0, ge=0, le=2**32 - 1)
    split: str = "train"
    #: A dataset's sub-set(s), comma-separated (LSUN scenes); None = the dataset's first.
    category: str | None = None
    #: Train without the near duplicates ``ganbench data dedup`` listed for the split (the
    #: first image of each group stays); the list's digest is logged, and a resume checks it.
    dedup: bool = False
    #: Train on this fraction of the split (after dedup): a subset stratified by label,
    #: drawn with a fixed seed (0), so every seed of a study trains on the same images
    #: (Zhao et al. 2020's 10% CIFAR-10 setting is 0.1); its size and the sha256 of its
    #: indices are logged, and a resume checks them. Scores compare with the whole split.
    data_fraction: float = ranged(1.0, gt=0, le=1, text="more than 0 and at most 1")
    #: Read losses back and log them every this many steps.
    log_every: int = ranged(10, ge=1)
    #: Sample grid from the fixed z every this many steps; 0 = ten times per run.
    sample_every: int = ranged(0, ge=0, text="0 (ten grids a run) or more")
    #: Checkpoint every this many steps; 0 = every ``checkpoint_minutes`` (and at the end).
    checkpoint_every: int = ranged(0, ge=0, text="0 (use checkpoint_minutes) or more")
    #: Minutes of training between checkpoints when checkpoint_every is 0; 0 = only at
    #: the end. A run stopped any other way than by a signal loses at most this much.
    checkpoint_minutes: float = ranged(10.0, ge=0, text="0 (only at the end) or more")
    #: Number of images in a sample grid (from a fixed z, the same all run).
    grid_size: int = ranged(64, ge=1)
    #: Score the generator every this many steps (and at the end); 0 = never.
    eval_every: int = ranged(0, ge=0, text="0 (never) or more")
    #: Generated images per score during training (fewer than FID-50k: recorded in names).
    eval_samples: int = ranged(10_000, ge=1)
    #: Comma-separated metrics scored during training; FID also picks the best checkpoint.
    eval_metrics: str = "fid"
    #: Feature extractor for those scores; empty = the dataset's default.
    eval_extractor: str = ""
    #: The split of the real images those scores compare with; empty = the split the run
    #: trains on. compare_gan and PyTorch-StudioGAN score FID from 10,000 generated
    #: images against the dataset's test split.
    eval_split: str = ""
    #: The learning rates over training: constant (none), or decayed linearly to 0 at the
    #: last step (linear: lr x (1 - (step - 1) / steps) at each step), as SNGAN
    #: (sngan_projection train.py lines 120-123, LinearShift from iteration 0) and WGAN-GP
    #: (gan_cifar_resnet.py line 282, DECAY) train their CIFAR-10 ResNets.
    lr_decay: Literal["none", "linear"] = "none"
    #: Decay of an exponential moving average of G's weights (Yazici et al. 2019,
    #: arXiv 1806.04498) that samples, scores and is exported in G's place; 0 = none
    #: (BigGAN-PyTorch and PyTorch-StudioGAN default to 0.9999; 0.999 suits short runs).
    ema: float = ranged(0.0, ge=0, lt=1, text="0 (none) or a decay below 1")
    #: The average is a copy of G until this step, then averages (BigGAN-PyTorch's
    #: ema_start; its reference runs start at 20,000 of 500,000 steps).
    ema_start: int = ranged(0, ge=0)
    #: DiffAugment (Zhao et al. 2020, arXiv 2006.10738) of every image D sees in training,
    #: real and generated: a comma-separated subset of color, translation, cutout (the
    #: paper's CIFAR-10 setting is all three); empty = none. Off at evaluation.
    diffaugment: str = ""
    # The fast path (ganbench/training/speed.py says what auto becomes and why).
    #: NHWC memory layout for convolutions.
    channels_last: Literal["auto", "on", "off"] = "auto"
    #: auto: bf16 autocast on GPUs that have it, fp16 (with a gradient scaler) on older
    #: ones, fp32 on the CPU.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    #: Adam implementation: fused kernels, foreach, or the plain per-parameter loop.
    adam: Literal["auto", "fused", "foreach", "plain"] = "auto"
    #: torch.compile the networks (off: it has not paid for itself where measured; on the
    #: CPU it is refused, measured slower there).
    compile: Literal["auto", "on", "off"] = "off"
    #: torch.compile's mode when compile is on: reduce-overhead adds its own CUDA graphs.
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    #: Replay each training step as one CUDA graph (CUDA only; auto: on where the model's
    #: step is graph-safe, off elsewhere, with the reason logged as speed.graphs_off).
    graphs: Literal["auto", "on", "off"] = "auto"
    #: cuDNN's autotuner on CUDA (auto: on, unless cuDNN's deterministic mode is set).
    cudnn_benchmark: Literal["auto", "on", "off"] = "auto"
    #: CPU threads for torch; 0 = one per core this process may use.
    threads: int = ranged(0, ge=0, text="0 (one per core) or more")
    #: Distributed runs: batch-norm statistics over the global batch (SyncBatchNorm, GPUs
    #: only) instead of each rank's share (the default, as the reference DCGAN trains).
    sync_bn: bool = False

    def __post_init__(self) -> None:
        check_ranges(self)
        parse_policy(self.diffaugment)
