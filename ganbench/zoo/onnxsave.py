"""Writing a zoo ONNX file: checked by ``onnx.checker`` first, then written whole or not
at all (a temp file beside it, optionally verified, then ``os.replace``), so an interrupted
or rejected export never leaves a half-written generator where a zoo file is expected."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganbench.errors import ZooError


def save_checked(
    model: Any, dest: Path, what: str, verify: Callable[[Path], None] | None = None
) -> None:
    """Check ``model`` (full check), save it to ``dest`` atomically; ``verify`` sees the
    written temp file before it takes ``dest``'s place and may raise to refuse it."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ZooError(f"onnx.checker rejected the {what}: {str(exc).splitlines()[0]}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        if verify is not None:
            verify(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
