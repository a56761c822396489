"""Output storage backends that keep values on the local filesystem."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from flux import codec
from flux.storage import OutputStorage, StorageReference


class LocalFileStorage(OutputStorage):
    """One JSON file per value under ``base_path``; history keeps only a reference."""

    def __init__(self, base_path: str | os.PathLike[str] | None = None):
        # Without a base path, FLUX_HOME is read when a value is stored, not when the
        # backend is built: workflow modules build it at import time.
        self._base_path = Path(base_path).resolve() if base_path else None

    @property
    def base_path(self) -> Path:
        if self._base_path is not None:
            return self._base_path
        return (Path(os.environ.get("FLUX_HOME") or Path.cwd() / ".flux") / "outputs").resolve()

    def config(self) -> dict[str, Any]:
        return {"base_path": str(self.base_path)}

    def store(self, key: str, value: Any) -> StorageReference:
        self.base_path.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".json"
        fd, tmp = tempfile.mkstemp(dir=self.base_path, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(codec.dumps(value))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.base_path / name)
        return self.reference(name)

    def retrieve(self, reference: StorageReference) -> Any:
        return self.retrieve_as(reference, codec.PLAIN)

    def retrieve_as(self, reference: StorageReference, expected: codec.Expected) -> Any:
        path = self.base_path / reference.key
        # ``store`` writes plain file names; a reference is data and names no other file.
        if path.resolve().parent != self.base_path:
            raise ValueError(f"stored output key {reference.key!r} is not a file name")
        try:
            return codec.loads(path.read_text(encoding="utf-8"), expected)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"stored output {reference.key} is missing from {path}"
            ) from None
