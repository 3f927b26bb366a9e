"""The alternating adversarial step every GAN family shares, for any pair of networks.

A family plugin subclasses :class:`AdversarialModel`, builds its networks
(:meth:`~AdversarialModel.build_networks`) and changes only what makes it itself: its loss
(:meth:`~AdversarialModel.d_loss`, :meth:`~AdversarialModel.g_loss`), a penalty on D
(:meth:`~AdversarialModel.d_penalty`), what D returns (:meth:`~AdversarialModel.discriminate`:
an ACGAN's class logits). What no family should write again lives here once: n_critic D
updates per G update, class labels for a conditional model (G(z, y), D(x, y)),
augmentation of what D sees (``GanModel.d_input``), the fast path (autocast, fused or
capturable Adam, fp16's scaler, channels_last, torch.compile) and data parallelism.

The config a subclass is built with needs ``z_dim``, ``z_distribution``, ``n_critic``,
``lr``, ``beta1`` and ``beta2``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from ganbench.plugins.interfaces import GanModel, ImageShape, Speed
from ganbench.training import losses
from ganbench.training.penalties import gradient_penalty
from ganbench.training.update import optimize


def sample_latent(
    config: Any, n: int, *, generator: torch.Generator | None = None, device: Any = None
) -> torch.Tensor:
    """``n`` latent vectors of ``config.z_dim``, uniform in [-1, 1] or standard normal."""
    if config.z_distribution == "uniform":
        return torch.rand(n, config.z_dim, generator=generator, device=device) * 2 - 1
    return torch.randn(n, config.z_dim, generator=generator, device=device)


def split_batches(real: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
    """``real`` (n batches concatenated along dim 0, as the runner passes them) as its n
    batches (views, in ``real``'s memory layout)."""
    if n == 1:
        return (real,)
    if real.shape[0] % n:
        raise ValueError(
            f"train_step takes {n} batches of the same size concatenated (n x B images);"
            f" got {real.shape[0]} images"
        )
    return real.chunk(n)


class AdversarialModel(GanModel):
    """Generator, discriminator, their Adam optimizers and the alternating step."""

    #: Spectral normalisation of D, added by :meth:`build_networks` (a record for the
    #: family's members; the step does nothing with it).
    spectral_norm: ClassVar[bool] = False
    #: The step syncs nothing with the host and draws only from torch's default
    #: generators: the runner replays it as one CUDA graph.
    graph_safe_step: ClassVar[bool] = True

    def __init__(self, config: Any, shape: ImageShape) -> None:
        self.config = config
        #: n_critic D updates (each on its own real batch) per G update.
        self.real_batches_per_step = config.n_critic
        #: G's update draws this many times D's batch (a family's config may give
        #: ``g_batch_factor``: SNGAN's and WGAN-GP's CIFAR-10 settings use 2).
        self.g_batch_factor = int(getattr(config, "g_batch_factor", 1))
        self.shape = shape
        self.z_dim = config.z_dim
        self.latent_distribution = config.z_distribution
        self.num_classes = shape.num_classes if self.conditioned() else 0
        self.generator, self.discriminator = self.build_networks(config, shape)
        self.opt_g, self.opt_d = self._optimizers({})
        # the parameters each update differentiates for (fixed: the modules never change)
        self._g_params = list(self.generator.parameters())
        self._d_params = list(self.discriminator.parameters())
        # The fast path (accelerate): compiled callables of the same modules (state dicts
        # stay those of the plain modules), autocast dtype, and fp16's gradient scaler.
        self._G, self._D = self.generator, self.discriminator
        self._autocast: torch.dtype | None = None
        self._device_type = "cpu"
        self._scaler = torch.amp.GradScaler("cpu", enabled=False)
        self._compile = False
        self._compile_mode = "default"
        #: D's DistributedDataParallel wrapper in a distributed run (see distribute).
        self._ddp_d: Any = None

    # ---- what a family provides ----------------------------------------------------------
    def build_networks(
        self, config: Any, shape: ImageShape
    ) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(G, D), initialised, for images of ``shape``; conditional on
        :attr:`num_classes` classes when it is > 0 (then G takes (z, y), D (x, y))."""
        raise NotImplementedError

    def conditioned(self) -> bool:
        """Whether the config asks for class-conditional networks (default: no)."""
        return False

    def d_loss(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        """D maximises log D(x) + log(1 - D(G(z))) (Goodfellow et al.)."""
        return losses.bce_d(out_real, out_fake)

    def g_loss(self, out_gen: torch.Tensor) -> torch.Tensor:
        """Non-saturating: G maximises log D(G(z))."""
        return losses.non_saturating_g(out_gen)

    def d_output(self, out: torch.Tensor) -> torch.Tensor:
        """What ``d_real``/``d_fake`` report of D's raw output (default: the sigmoid, a
        probability, for the cross-entropy losses)."""
        return torch.sigmoid(out)

    def d_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """A regulariser added to D's loss at each D update, on that update's real images
        (of classes ``labels``, for a conditional model) and generated ones; None: none."""
        return None

    def gradient_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None, weight: float
    ) -> torch.Tensor:
        """Gulrajani et al.'s penalty on D as this step runs it (its autocast, fp16's
        scaler, this replica's share of the interpolation weights): for :meth:`d_penalty`."""
        return gradient_penalty(
            self.eager_discriminator(),
            real,
            fake,
            weight=weight,
            scaler=self.step_scaler(),
            autocast_ctx=self._amp(),
            shard=self.shard,
            labels=labels,
        )

    def discriminate(
        self, D: Any, images: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's raw output on ``images`` (of classes ``labels`` when conditional) and its
        class logits where it has a classifier (ACGAN), else None."""
        return (D(images) if labels is None else D(images, labels)), None

    def class_weights(self) -> tuple[float, float]:
        """Weights of the class cross-entropy in D's loss (on real images) and G's (on
        generated ones), where :meth:`discriminate` gives class logits (ACGAN)."""
        return 1.0, 1.0

    # ---- the fast path and parallelism ---------------------------------------------------
    def _optimizers(self, kind: dict[str, bool]) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        betas, lr = (self.config.beta1, self.config.beta2), self.config.lr
        return (
            torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas, **kind),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas, **kind),
        )

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_g, self.opt_d]

    def accelerate(self, speed: Speed) -> None:
        # Called after .to(device), before any step: the optimizers hold no state yet.
        if speed.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        kind: dict[str, bool] = {
            "fused": {"fused": True},
            "foreach": {"foreach": True},
            "plain": {"foreach": False},
        }[speed.adam]
        if speed.graphs:
            # Adam's step count on the device, bias corrections without a host read
            kind = {**kind, "capturable": True}
        self.opt_g, self.opt_d = self._optimizers(kind)
        self._device_type = speed.device.type
        # autocast's cache of cast weights stays on when the step is captured: each
        # autocast context opens and closes inside the step, so the cache never outlives
        # a capture (what make_graphed_callables's cache_enabled=False rule guards against)
        self._autocast = speed.autocast
        self._scaler = torch.amp.GradScaler(
            speed.device.type, enabled=speed.autocast == torch.float16
        )
        self._compile = speed.compile
        self._compile_mode = speed.compile_mode
        if speed.compile:
            self._G, self._D = self._compiled(self.generator), self._compiled(self.discriminator)

    def _compiled(self, module: Any) -> Any:
        return torch.compile(module, mode=self._compile_mode)

    def distribute(self, replicas: Any) -> None:
        # D runs two forwards (real, then fake) before its one backward. DDP's default
        # buffer broadcast at every forward copies rank 0's batch-norm running statistics
        # in place, which invalidates what the first forward saved for backward
        # (pytorch#22095, #175024: "modified by an inplace operation"). So D broadcasts no
        # buffers: its running statistics are read only in eval mode (probes, analyses),
        # never in training, and rank 0's are the ones checkpointed. G has one forward per
        # step and keeps the broadcast. Compilation wraps the DDP modules (DDP's own
        # graph-break-aware path), not the other way round.
        self.shard = (replicas.rank, replicas.world)
        ddp_g = replicas.wrap(self.generator)
        self._ddp_d = replicas.wrap(self.discriminator, broadcast_buffers=False)
        self._G, self._D = ddp_g, self._ddp_d
        if self._compile:
            self._G, self._D = self._compiled(ddp_g), self._compiled(self._ddp_d)

    def eager_discriminator(self) -> Any:
        """D as it runs eagerly (in its DDP wrapper in a distributed run): what a gradient
        penalty differentiates twice (a compiled module cannot be)."""
        return self._ddp_d if self._ddp_d is not None else self.discriminator

    def _d_without_sync(self) -> contextlib.AbstractContextManager:
        """G's update runs through D but differentiates for G's parameters only, so D's
        DistributedDataParallel wrapper must not expect (and wait to all-reduce) gradients
        of its own from that backward."""
        return self._ddp_d.no_sync() if self._ddp_d is not None else contextlib.nullcontext()

    def to(self, device: torch.device) -> AdversarialModel:
        # Called before the first step, while the optimizers hold no state yet.
        self.generator.to(device)
        self.discriminator.to(device)
        return self

    def sample_latent(
        self, n: int, *, generator: torch.Generator | None = None, device: Any = None
    ) -> torch.Tensor:
        return sample_latent(self.config, n, generator=generator, device=device)

    def step_scaler(self) -> torch.amp.GradScaler | None:
        """fp16's gradient scaler, or None: bf16 and fp32 need none, and a disabled
        GradScaler is still a call that Dynamo does not trace."""
        return self._scaler if self._autocast == torch.float16 else None

    def _amp(self) -> torch.autocast:
        return torch.autocast(
            self._device_type,
            self._autocast or torch.float32,
            enabled=self._autocast is not None,
        )

    # ---- the step ------------------------------------------------------------------------
    def _class_loss(
        self, logits: torch.Tensor | None, labels: torch.Tensor | None, weight: float
    ) -> torch.Tensor | None:
        if logits is None or labels is None or not weight:
            return None
        return weight * losses.class_cross_entropy(logits, labels)

    def train_step(
        self, real: torch.Tensor, labels: torch.Tensor | None = None
    ) -> Mapping[str, torch.Tensor]:
        # No host sync and no branch on a tensor's value: the runner replays this whole
        # method as one CUDA graph (GanModel.graph_safe_step).
        G, D, scaler = self._G, self._D, self.step_scaler()
        if self._compile and self._compile_mode != "default":
            # torch.compile's own CUDA graphs (cudagraph trees): a new step begins, so
            # the last step's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        n = self.real_batches_per_step
        reals = split_batches(real, n)
        if self.num_classes and labels is None:
            raise ValueError(f"a model of {self.num_classes} classes trains on labelled images")
        ys = split_batches(labels, n) if self.num_classes else (None,) * n
        w_d, w_g = self.class_weights()
        penalty = class_d = None
        # G draws its own latents after several D updates or for a larger batch than D's.
        fresh = n > 1 or self.g_batch_factor > 1
        for i, (real_i, y_i) in enumerate(zip(reals, ys, strict=True)):
            b, device = real_i.shape[0], real_i.device
            z, y_fake = self.batch_latent(b, device), self.batch_labels(b, device)

            # D: real and fake go through D as separate batches, as DCGAN's code does, so
            # batchnorm sees each on its own; both through d_input (augmentation).
            with self._amp():
                # Where G takes fresh latents below, these fakes need no graph back into
                # G; otherwise G's update reuses this fake.
                with torch.no_grad() if fresh else contextlib.nullcontext():
                    fake = G(z) if y_fake is None else G(z, y_fake)
                out_real, cls_real = self.discriminate(D, self.d_input(real_i), y_i)
                out_fake, _ = self.discriminate(D, self.d_input(fake.detach()), y_fake)
                loss_d = self.d_loss(out_real, out_fake)
                class_d = self._class_loss(cls_real, y_i, w_d)
                if class_d is not None:
                    loss_d = loss_d + class_d
            penalty = self.d_penalty(real_i, fake, y_i)
            if penalty is not None:
                loss_d = loss_d + penalty
            optimize(loss_d, self.opt_d, scaler, self._d_params)
            if i < n - 1 and scaler is not None:
                scaler.update()  # a GradScaler steps each optimizer once per update

        # G: one update, on D as it is after its updates. After several D updates G draws
        # fresh latents (Gulrajani et al.'s Algorithm 1, line 11); after one it reuses the
        # fake D was just trained on (DCGAN's order, one G forward fewer). Its backward
        # fills G's gradients only: D's weight gradients from this loss would be unused.
        # With g_batch_factor k it draws k times D's batch (SNGAN's n_gen_samples).
        if fresh:
            b = reals[-1].shape[0] * self.g_batch_factor
            z, y_fake = self.batch_latent(b, real.device), self.batch_labels(b, real.device)
            with self._amp():
                fake = G(z) if y_fake is None else G(z, y_fake)
        with self._amp(), self._d_without_sync():
            out_gen, cls_gen = self.discriminate(D, self.d_input(fake), y_fake)
            loss_g = self.g_loss(out_gen)
            class_g = self._class_loss(cls_gen, y_fake, w_g)
            if class_g is not None:
                loss_g = loss_g + class_g
        optimize(loss_g, self.opt_g, scaler, self._g_params)
        if scaler is not None:
            scaler.update()

        # With several D updates the D statistics are the last update's.
        stats = {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": self.d_output(out_real.detach()).mean(),
            "d_fake": self.d_output(out_fake.detach()).mean(),
        }
        if penalty is not None:
            stats["d_penalty"] = penalty.detach()
        if class_d is not None and class_g is not None:
            stats["d_class_loss"] = class_d.detach()
            stats["g_class_loss"] = class_g.detach()
        return stats

    def state_dict(self) -> dict[str, Any]:
        # The scaler's scale and growth tracker decide whether the next fp16 steps are
        # skipped: an exact resume needs them (empty when the scaler is off).
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self._scaler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if state.get("scaler") and self._scaler.is_enabled():
            self._scaler.load_state_dict(state["scaler"])
