"""Moved to :mod:`ganbench.images` (this old path warns, and goes in 0.3).

Analysis plugins outside ganbench drew their grids with ``ganbench.zoo.pictures.grid``;
the picture helpers are not the zoo's, so they live with the other pictures now.
"""

from ganbench._moved import moved

moved(__name__, "ganbench.images")
