"""Center-crop then resize, as the DCGAN reference prepares images, to uint8 C x R x R."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_array(image: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """``image`` cropped to its central square, resized to ``resolution``, uint8 C x R x R.

    PIL's bilinear resize widens its filter when it shrinks, so downsampling is
    antialiased (as torchvision's ``Resize`` on PIL images is) and upsampling is smooth.
    """
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        if image.mode in ("RGBA", "LA", "P") and mode == "RGB":
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        image = image.convert(mode)
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)
