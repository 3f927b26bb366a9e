"""Writing a zoo ONNX file: checked by ``onnx.checker`` first, then written whole or not
at all (:func:`ganbench.files.sealed.atomic_path`: a temp file beside it, optionally verified,
fsync'ed, then renamed), so an interrupted or rejected export never leaves a half-written
generator where a zoo file is expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganbench.errors import ZooError
from ganbench.files.sealed import atomic_path


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
    with atomic_path(dest) as tmp:
        # The temporary name ends in .tmp: say the format, not left to the file's suffix.
        onnx.save(model, str(tmp), format="protobuf")
        if verify is not None:
            verify(tmp)
