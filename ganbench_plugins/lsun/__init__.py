"""LSUN scenes (Yu et al. 2015), read from the LMDB databases as distributed.

Each category and split is one LMDB folder, ``<root>/<category>_<split>_lmdb/`` holding
``data.mdb`` and ``lock.mdb``, whose values are encoded images (WebP in the official
release, JPEG in older copies) under hex SHA-1 keys. ``--category`` picks one scene
(default ``bedroom``, the DCGAN paper's) or several separated by commas; with several, an
image's label is the position of its category in the list given.

torchvision's ``LSUN`` class is not used: it writes a key-cache file into the *current
working directory* (``_cache_<path>``), a side effect a benchmark run must not have, and
it opens its environment when constructed, which breaks when the source is then used
from forked workers or opened twice in one process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.errors import BadImageError, DatasetNotFoundError, UsageError
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Dataset, DatasetRequest, ImageSource
from ganbench.plugins.registry import Registrar

if TYPE_CHECKING:
    from PIL import Image

#: The ten scene categories of the LSUN challenge, in the release's (alphabetical) order.
CATEGORIES = (
    "bedroom",
    "bridge",
    "church_outdoor",
    "classroom",
    "conference_room",
    "dining_room",
    "kitchen",
    "living_room",
    "restaurant",
    "tower",
)
DEFAULT_CATEGORY = "bedroom"
LSUN_PAGE = "https://github.com/fyu/lsun"


def parse_categories(value: Any) -> tuple[str, ...]:
    """``"bedroom"`` / ``"bedroom,kitchen"`` (or a list) -> known categories, in order."""
    if value is None or value == "":
        return (DEFAULT_CATEGORY,)
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = tuple(p.strip() for p in parts if p.strip())
    if not names:
        return (DEFAULT_CATEGORY,)
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown:
        raise UsageError(
            f"lsun has no category {unknown[0]!r}; use one or several (comma-separated)"
            f" of {', '.join(CATEGORIES)}"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"lsun category {twice[0]!r} is given twice in {value!r}")
    return names


def lmdb_folder(root: Path, category: str, split: str) -> Path:
    return root / f"{category}_{split}_lmdb"


class LsunDataset(Dataset):
    name = "lsun"
    summary = "LSUN scenes (bedroom, church_outdoor, ...): millions of photos, read from LMDB"
    channels = 3
    # One category is unlabelled in spirit (every label is 0); several comma-separated
    # categories are labelled by their position in the list, so the number of classes
    # depends on the request and cannot be a constant: see ImageSource.class_names().
    num_classes = None
    default_resolution = 64
    resolutions = (32, 64, 128, 256)
    splits = ("train", "val")
    categories = CATEGORIES
    license = (
        "LSUN terms of use: for non-commercial research and educational purposes only;"
        " the images belong to their owners"
    )
    citation = (
        "Yu, F., Seff, A., Zhang, Y., Song, S., Funkhouser, T. and Xiao, J. (2015)."
        " LSUN: Construction of a Large-scale Image Dataset using Deep Learning with Humans"
        " in the Loop. arXiv:1506.03365"
    )
    obtain = (
        f"by hand: get the download script from {LSUN_PAGE} and run"
        " `python download.py -c bedroom -o <root>` (it fetches bedroom_train_lmdb.zip"
        " and bedroom_val_lmdb.zip), then unzip them in <root> so that"
        " <root>/bedroom_train_lmdb/data.mdb exists"
    )

    def open(self, request: DatasetRequest, root: Path) -> ImageSource:
        self.check_split(request.split)
        names = parse_categories(request.options.get("category"))
        root = Path(root)
        folders = [lmdb_folder(root, c, request.split) for c in names]
        missing = [f for f in folders if not (f / "data.mdb").is_file()]
        if missing:
            raise DatasetNotFoundError(_not_found(root, missing, request.split))
        source = LsunSource(folders, names)
        empty = [f for f, n in zip(folders, source.counts, strict=True) if n == 0]
        if empty:
            raise DatasetNotFoundError(
                f"{empty[0]} holds an LMDB database with no images: the download or unzip"
                f" was probably cut short; fetch it again ({self.obtain})"
            )
        return source


def _not_found(root: Path, missing: Sequence[Path], split: str) -> str:
    what = ", ".join(str(f) for f in missing)
    first = missing[0].name.removesuffix(f"_{split}_lmdb")
    return (
        f"LSUN files not found: no data.mdb in {what}. lsun expects one LMDB folder per"
        f" category and split, <root>/<category>_<split>_lmdb/ holding data.mdb and"
        f" lock.mdb, with <root> = {root}. Get them by hand from {LSUN_PAGE}:"
        f" `python download.py -c {first} -o {root}`, then unzip"
        f" {first}_{split}_lmdb.zip in {root} (or unzip it in another folder and pass"
        f" that folder as --data-root FOLDER)"
    )


class LsunSource(ImageSource):
    """The images of one or several LMDB databases, concatenated in the order given."""

    def __init__(self, folders: Sequence[Path], names: Sequence[str]) -> None:
        self.folders = [Path(f) for f in folders]
        self.names = tuple(names)
        # Keys are listed once, here, into one flat buffer (about 40 bytes a key, no
        # per-key Python object: 3 million bedroom keys take 120 MB, not 400).
        self._keys: list[tuple[bytes, array]] = []
        self._starts: list[int] = []
        #: Number of images in each database, in the order given.
        self.counts: list[int] = []
        total = 0
        for folder in self.folders:
            blob, offsets = _list_keys(folder)
            self._keys.append((blob, offsets))
            self._starts.append(total)
            self.counts.append(len(offsets) - 1)
            total += len(offsets) - 1
        self._len = total

    def __len__(self) -> int:
        return self._len

    def locate(self, index: int) -> tuple[int, bytes]:
        """(category position, LMDB key) of image ``index``."""
        if not 0 <= index < self._len:
            raise IndexError(f"image {index} of {self._len}")
        which = bisect_right(self._starts, index) - 1
        blob, offsets = self._keys[which]
        i = index - self._starts[which]
        return which, blob[offsets[i] : offsets[i + 1]]

    def read(self, index: int) -> tuple[Image.Image, int | None]:
        from ganbench.data.decode import decode_bytes

        which, key = self.locate(index)
        where = f"{self.folders[which]} key {key.decode('ascii', 'backslashreplace')!r}"
        with shared_env(self.folders[which]).begin(write=False) as txn:
            value = txn.get(key)
        if value is None:
            raise BadImageError(where, "the key is no longer in the database")
        return decode_bytes(value, where), which

    def files(self) -> list[Path]:
        return [folder / "data.mdb" for folder in self.folders]

    def class_names(self) -> tuple[str, ...]:
        return self.names


# LMDB allows one open environment per database and process (py-lmdb refuses a second
# open), and an environment must not be used across fork(). So environments live here,
# one per database, shared by every source of this process, opened on first read and
# replaced in a forked child (e.g. a DataLoader worker) by its own.
_ENVS: dict[str, Any] = {}
_ENVS_PID = os.getpid()
_ENVS_LOCK = threading.Lock()


def _drop_inherited_envs() -> None:
    """In a forked child: close (in the child only) the parent's environments."""
    global _ENVS_PID
    if os.getpid() == _ENVS_PID:
        return
    for env in _ENVS.values():
        # Read-only and lock-free, so closing only unmaps the child's copy of the file
        # and closes its copies of the descriptors; the parent's environment is untouched.
        with contextlib.suppress(Exception):
            env.close()
    _ENVS.clear()
    _ENVS_PID = os.getpid()


def shared_env(folder: Path) -> Any:
    """This process's environment for the LMDB database in ``folder`` (opened once)."""
    key = os.path.realpath(folder)
    with _ENVS_LOCK:
        _drop_inherited_envs()
        env = _ENVS.get(key)
        if env is None:
            env = _ENVS[key] = _open_env(folder)
        return env


def _open_env(folder: Path) -> Any:
    import lmdb

    try:
        # Read-only and lock-free: the files may sit on a read-only disk and several
        # processes read them at once; no readahead, since reads are random.
        return lmdb.open(str(folder), readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as exc:
        raise DatasetNotFoundError(
            f"{folder} is not a readable LMDB database ({exc}); download and unzip it"
            f" again from {LSUN_PAGE}"
        ) from None


def _list_keys(folder: Path) -> tuple[bytes, array]:
    """All keys of the database, in LMDB's (sorted) order: one buffer plus offsets.

    Uses this process's environment when a source already reads the database, else
    opens one just for the listing and closes it, so ``open`` leaves nothing open.
    """
    with _ENVS_LOCK:
        _drop_inherited_envs()
        env = _ENVS.get(os.path.realpath(folder))
        owned = env is None
        if owned:
            env = _open_env(folder)
        try:
            buffer = bytearray()
            offsets = array("q", [0])
            with env.begin(write=False) as txn:
                for key in txn.cursor().iternext(keys=True, values=False):
                    buffer += key
                    offsets.append(len(buffer))
            return bytes(buffer), offsets
        finally:
            if owned:
                env.close()


@hookimpl
def ganbench_register_datasets(registry: Registrar[Dataset]) -> None:
    registry.add(LsunDataset())
