"""The zoo index: a TOML file listing published generators, checked against a JSON Schema.

The index is where a download's sha256 and size come from, so it is validated whole
before anything in it is trusted. The default index ships inside the package
(``ganbench_zoo/index.toml``, the repository's ``ganbench_zoo/`` folder); ``--index`` or
``GANBENCH_ZOO_INDEX`` name another one, a path or an http(s) URL. A remote index is kept
in the cache and used from there when the network is gone.

An index may come from anyone, so a remote one is trusted with less: it may point only at
remote files (``file:`` URLs only from a local index), it is read up to
:data:`MAX_INDEX_BYTES`, a plain-http one is warned about (whoever can change it in transit
chooses every sha256 checked against it), an https one that redirects to plain http is
refused (:mod:`ganbench.files.urls`), a file it lists may be at most
:data:`MAX_FILE_BYTES`, and control characters in its text are replaced when it is read,
so that ``zoo list``/``info`` cannot drive the terminal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ganbench.errors import UnknownModelError, ZooError
from ganbench.files.names import LOWER_NAME, check_folder_name
from ganbench.files.sealed import write_atomic
from ganbench.files.urls import open_url
from ganbench.zoo.fidelity_file import FidelityFile
from ganbench.zoo.metadata import OPTIONAL_FIELDS, GeneratorInfo, Score

INDEX_FORMAT = "ganbench-zoo-index/1"
INDEX_ENV = "GANBENCH_ZOO_INDEX"
NAME_PATTERN = LOWER_NAME
#: Cached copies of remote indexes, in CACHE/zoo. ganbench's own folders there start with
#: "_", which no zoo name can (NAME_PATTERN), so a generator never shares their folder.
INDEX_CACHE = "_indexes"
#: An index is a few kB per generator; a server sending more is not serving an index.
MAX_INDEX_BYTES = 16 << 20
#: The largest file an index may declare (the schema's ``size`` maximum, 2 GiB - 1): a
#: zoo file is one ONNX protobuf (exported with ``external_data=False``), and protobuf
#: cannot serialise a message of 2 GiB or more, so no zoo file can be larger. That is room
#: for ~500M float32 parameters; StyleGAN2's 1024px generator is ~30M (~120 MB). A model
#: past it (GigaGAN's ~1B) would need ONNX's external data, which ganbench neither writes
#: nor reads. A larger size is a broken or hostile index, refused before any download.
MAX_FILE_BYTES = 2**31 - 1
_HEADER = (
    "# ganbench zoo index: one [[generators]] table per published generator.\n"
    "# Written by `ganbench zoo export` / `zoo publish --index`; checked against\n"
    "# ganbench/zoo/index.schema.json. A url without a scheme is relative to this file.\n\n"
)


def schema() -> dict[str, Any]:
    return json.loads(resources.files("ganbench.zoo").joinpath("index.schema.json").read_text())


def bundled_index() -> str:
    """The index shipped with ganbench (the repository's ``ganbench_zoo/index.toml``)."""
    return str(resources.files("ganbench_zoo").joinpath("index.toml"))


def index_location(flag: str | None = None) -> str:
    """``--index``, else ``$GANBENCH_ZOO_INDEX``, else the bundled index."""
    return flag or os.environ.get(INDEX_ENV) or bundled_index()


def is_remote(location: str) -> bool:
    return urllib.parse.urlparse(location).scheme in ("http", "https")


def _printable_char(c: str) -> str:
    if c.isprintable():
        return c
    return " " if c in "\t\n\r" or unicodedata.category(c) == "Zs" else "?"


def printable(text: str) -> str:
    """``text`` without control, format or bidi characters (escape sequences, U+202E...),
    each replaced by "?": text from an index or a server is shown on terminals."""
    return text if text.isprintable() else "".join(_printable_char(c) for c in text)


def _printable_data(data: Any) -> Any:
    if isinstance(data, str):
        return printable(data)
    if isinstance(data, dict):
        return {printable(k): _printable_data(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_printable_data(v) for v in data]
    return data


@dataclass(frozen=True)
class ZooEntry:
    """One published generator: its facts, and where and how to fetch its ONNX file."""

    info: GeneratorInfo
    url: str
    sha256: str
    size: int
    card: str | None = None
    picture: str | None = None
    #: Its torch-fidelity flavour file, if one was made (``ganbench.zoo.flavours``).
    torch_fidelity: FidelityFile | None = None

    @property
    def name(self) -> str:
        return self.info.name

    def to_table(self) -> dict[str, Any]:
        table: dict[str, Any] = {"name": self.name, "url": self.url}
        table |= {"sha256": self.sha256, "size": self.size}
        if self.card:
            table["card"] = self.card
        if self.picture:
            table["picture"] = self.picture
        info = dataclasses.asdict(self.info)
        info.pop("name")
        for key in OPTIONAL_FIELDS:  # written only where set, so old entries keep their text
            info.pop(key)
        info |= self.info.optional_values()
        info["output_range"] = list(self.info.output_range)
        info["metrics"] = [dataclasses.asdict(s) for s in self.info.metrics]
        if self.torch_fidelity:
            info["torch_fidelity"] = self.torch_fidelity.to_table()
        return table | info

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> ZooEntry:
        """A table the schema accepted."""
        table = dict(table)
        url, sha256, size = table.pop("url"), table.pop("sha256"), table.pop("size")
        card, picture = table.pop("card", None), table.pop("picture", None)
        fidelity = table.pop("torch_fidelity", None)
        table["output_range"] = tuple(table["output_range"])
        table["metrics"] = tuple(Score(**m) for m in table["metrics"])
        if "class_names" in table:
            table["class_names"] = tuple(table["class_names"])
        fidelity = FidelityFile.from_table(fidelity) if fidelity else None
        return cls(GeneratorInfo(**table), url, sha256, size, card, picture, fidelity)


@dataclass
class ZooIndex:
    location: str
    entries: list[ZooEntry]

    def __iter__(self) -> Iterator[ZooEntry]:
        return iter(self.entries)

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> ZooEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise UnknownModelError(name, self.names(), self.location)

    def resolve(self, relative: str) -> str:
        """A url or file named in the index, made absolute against the index's location."""
        scheme = urllib.parse.urlparse(relative).scheme
        if scheme == "file" and is_remote(self.location):
            raise _local_file_error(self.location, relative)
        if scheme in ("http", "https", "file", "models"):
            return relative
        if is_remote(self.location):
            return urllib.parse.urljoin(self.location, relative)
        return str(Path(self.location).expanduser().resolve().parent / relative)


def validate(data: Any, where: str) -> None:
    """Raise a one-line error for the first thing in ``data`` the schema rejects."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise ZooError(
            f"zoo index {where} is invalid at {path.lstrip('.') or 'the top'}: {error.message};"
            " fix the file or point --index at a good one"
        )
    names = [g["name"] for g in data["generators"]]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ZooError(f"zoo index {where} lists {', '.join(doubled)} more than once; keep one")


def _local_file_error(location: str, url: str) -> ZooError:
    return ZooError(
        f"zoo index {location} is remote but points at the local file {url}: a remote index"
        " may name only http(s) URLs and files beside it; remove that entry, or copy the"
        " index and use it as a local file with --index"
    )


def parse(text: str, where: str) -> ZooIndex:
    """An index from its text; ``where`` is its path or URL (a URL: a remote index)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ZooError(f"zoo index {where} is not valid TOML ({exc}); fix the file") from None
    data = _printable_data(data)  # before the schema's messages quote any of it
    validate(data, where)
    if is_remote(where):
        for g in data["generators"]:
            if urllib.parse.urlparse(g["url"]).scheme == "file":
                raise _local_file_error(where, g["url"])
    return ZooIndex(where, [ZooEntry.from_table(g) for g in data["generators"]])


def _fetch_index(location: str, timeout: float) -> str:
    request = urllib.request.Request(location, headers={"User-Agent": "ganbench"})
    with open_url(request, timeout) as response:  # no https -> http redirect
        data = response.read(MAX_INDEX_BYTES + 1)
    if len(data) > MAX_INDEX_BYTES:
        raise ZooError(
            f"zoo index {location} is larger than {MAX_INDEX_BYTES >> 20} MiB, so it is not a"
            " zoo index; check the URL"
        )
    return data.decode("utf-8")


def load_index(
    location: str, cache: Path, say: Callable[[str], None] = print, timeout: float = 10.0
) -> ZooIndex:
    """Read and validate an index; a remote one falls back to its cached copy offline."""
    if not is_remote(location):
        path = Path(location).expanduser()
        if not path.is_file():
            raise ZooError(
                f"zoo index {path} does not exist; give an index file or URL with --index"
                f" or ${INDEX_ENV}"
            )
        return parse(path.read_text(encoding="utf-8"), str(path))
    if urllib.parse.urlparse(location).scheme == "http":
        say(
            f"warning: zoo index {location} is plain http: whoever can change it on the way"
            " chooses every sha256 that ganbench checks downloads against; use https"
        )
    copy = cache / INDEX_CACHE / (hashlib.sha256(location.encode()).hexdigest()[:16] + ".toml")
    try:
        text = _fetch_index(location, timeout)
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        if not copy.is_file():
            raise ZooError(
                f"cannot fetch the zoo index {location} ({getattr(exc, 'reason', exc)}) and no"
                " copy is cached; check the network or use a local index with --index"
            ) from None
        say(f"zoo index {location} is unreachable; using the copy cached in {copy}")
        index = parse(copy.read_text(encoding="utf-8"), location)
        return index
    index = parse(text, location)  # validated before it replaces the cached copy
    write_text_atomic(copy, text)
    return index


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)


def render(entries: list[ZooEntry]) -> str:
    import tomli_w

    data = {"format": INDEX_FORMAT, "generators": [e.to_table() for e in entries]}
    validate(data, "(about to be written)")
    return _HEADER + tomli_w.dumps(data)


def upsert(path: Path, entry: ZooEntry) -> bool:
    """Add ``entry`` to the index file at ``path`` (created if missing), replacing one of
    the same name; returns True when it replaced one. Written atomically."""
    entries = parse(path.read_text(encoding="utf-8"), str(path)).entries if path.exists() else []
    replaced = any(e.name == entry.name for e in entries)
    entries = [entry if e.name == entry.name else e for e in entries]
    if not replaced:
        entries.append(entry)
    write_text_atomic(path, render(entries))
    return replaced


def check_name(name: str) -> str:
    """``name`` when it can be a zoo name (a cache folder, an ONNX file name)."""
    return check_folder_name(name, "zoo name", "dcgan-digits-32", pattern=NAME_PATTERN)
