"""The baseline: pytorch/examples' dcgan/main.py, the textbook PyTorch DCGAN loop.

As main.py trains (pytorch/examples dcgan/main.py, read at commit 00b1e34: the 'folder'
dataset branch, the DataLoader call, and the loop body under ``for epoch in
range(opt.niter)``): a ``DataLoader`` with 2 workers over
``torchvision.datasets.ImageFolder`` reading image files, each decoded and transformed
with ``Resize``, ``CenterCrop``, ``ToTensor`` and ``Normalize`` in the workers; fp32 NCHW;
a Sigmoid at D's end with ``BCELoss``; Adam(lr 2e-4, betas (0.5, 0.999)) without flags;
D's update as ``zero_grad``, backward on the real batch, backward on the fake batch,
``step``; then G's update on the same fake batch; the losses read with ``.item()`` every
iteration for its log line. The networks have the same layers as ganbench's DCGAN at the
same resolution, so only the loop and its data path differ. Not timed here: main.py's
image grid every 100 iterations and its per-epoch checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn


def generator(channels: int, resolution: int, nz: int = 100, ngf: int = 64) -> nn.Sequential:
    n = int(math.log2(resolution)) - 2
    width = ngf * 2 ** (n - 1)
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(True),
    ]
    for _ in range(n - 1):
        layers += [
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(True),
        ]
        width //= 2
    layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(channels: int, resolution: int, ndf: int = 64) -> nn.Sequential:
    n = int(math.log2(resolution)) - 2
    layers: list[nn.Module] = [
        nn.Conv2d(channels, ndf, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, True),
    ]
    width = ndf
    for _ in range(n - 1):
        layers += [
            nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width * 2),
            nn.LeakyReLU(0.2, True),
        ]
        width *= 2
    layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


def weights_init(m: nn.Module) -> None:
    if "Conv" in type(m).__name__:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif "BatchNorm" in type(m).__name__:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def write_image_files(images_nhwc: np.ndarray, root: Path) -> Path:
    """The images as PNG files in ``root/0/``, the one-class layout ImageFolder reads."""
    folder = root / "0"
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images_nhwc):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            folder / f"{i:06d}.png", compress_level=1
        )
    return root


class TextbookDCGAN:
    """One training iteration = ``step(real)``, exactly the tutorial's loop body."""

    def __init__(self, channels: int, resolution: int, device: torch.device) -> None:
        self.device = device
        torch.backends.cudnn.benchmark = True  # main.py: cudnn.benchmark = True
        self.netG = generator(channels, resolution).to(device)
        self.netD = discriminator(channels, resolution).to(device)
        self.netG.apply(weights_init)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=0.0002, betas=(0.5, 0.999))

    def step(self, real: torch.Tensor) -> tuple[float, float]:
        b = real.size(0)
        self.netD.zero_grad()
        label = torch.full((b,), 1.0, dtype=torch.float, device=self.device)
        output = self.netD(real).view(-1)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        noise = torch.randn(b, 100, 1, 1, device=self.device)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self.netD(fake.detach()).view(-1)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        self.optimizerD.step()
        self.netG.zero_grad()
        label.fill_(1.0)
        output = self.netD(fake).view(-1)
        errG = self.criterion(output, label)
        errG.backward()
        self.optimizerG.step()
        # The tutorial reads the losses every iteration for its log line: a host sync.
        return (errD_real + errD_fake).item(), errG.item()


def folder_batches(
    root: Path, resolution: int, batch_size: int, device: torch.device, workers: int = 2
) -> Iterator[torch.Tensor]:
    """main.py's data path for ``--dataset folder``: ImageFolder, its four transforms, a
    shuffling DataLoader with 2 workers; batches moved to the device per iteration."""
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    dataset = dset.ImageFolder(
        root=str(root),
        transform=transforms.Compose(
            [
                transforms.Resize(resolution),
                transforms.CenterCrop(resolution),
                transforms.ToTensor(),
                transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]
        ),
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    while True:
        for data, _ in loader:
            yield data.to(device)


def device_batches(
    images_nhwc: np.ndarray, batch_size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """The same loop with the data already normalised on the device: framework overhead
    alone, no input pipeline."""
    data = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
    while True:
        order = torch.randperm(len(data), device=device)
        for i in range(len(data) // batch_size):
            yield data[order[i * batch_size : (i + 1) * batch_size]]
