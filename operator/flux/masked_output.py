"""Masking secrets in what task code prints, a line at a time, as CI systems do.

:class:`MaskedStream` stands in for ``sys.stdout`` or ``sys.stderr``: it holds
back text until a line is complete, masks the line with a
:class:`~flux.redaction.Redactor` and passes it on. A partial line is passed on
masked when the stream is flushed or closed.

Known limits (the same as CI log masking): a secret written in pieces across a
flush (``print(s[:3], end="", flush=True); print(s[3:])``) is masked in neither
piece; output written to the file descriptors directly (a subprocess, C code,
``os.write(1, ...)``) does not pass through ``sys.stdout`` and is not masked.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from flux.redaction import Redactor


class MaskedStream(io.TextIOBase):
    def __init__(self, target: TextIO, redactor: Redactor):
        super().__init__()
        self.target = target
        self._redactor = redactor
        self._pending = ""
        self._lock = threading.Lock()  # task threads print concurrently

    def write(self, text: str) -> int:
        if not self._redactor:
            # No secrets (yet): nothing is held back.
            self._pass_pending()
            self.target.write(text)
            return len(text)
        with self._lock:
            self._pending += text
            end = self._pending.rfind("\n") + 1
            if end:
                lines, self._pending = self._pending[:end], self._pending[end:]
                # Masked as one text, so a multi-line secret printed whole is
                # masked whole (its lines are masked on their own as well).
                self.target.write(self._redactor.text(lines))
        return len(text)

    def flush(self) -> None:
        self._pass_pending()
        self.target.flush()

    def _pass_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, ""
        if pending:
            self.target.write(self._redactor.text(pending))

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.target.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.target.errors


def mask_std_streams(redactor: Redactor) -> None:
    """Mask ``sys.stdout`` and ``sys.stderr`` for the rest of the process (a task pod):
    threads still running at its end keep writing through the mask."""
    if not isinstance(sys.stdout, MaskedStream):
        sys.stdout = MaskedStream(sys.stdout, redactor)
    if not isinstance(sys.stderr, MaskedStream):
        sys.stderr = MaskedStream(sys.stderr, redactor)


def unmasked(stream: TextIO) -> TextIO:
    """The stream a :class:`MaskedStream` writes to (``stream`` itself otherwise)."""
    return stream.target if isinstance(stream, MaskedStream) else stream


@contextlib.contextmanager
def masked_std_streams(redactor: Redactor) -> Iterator[tuple[MaskedStream, MaskedStream]]:
    """``sys.stdout`` and ``sys.stderr`` masked with ``redactor`` for the duration."""
    saved = sys.stdout, sys.stderr
    out, err = MaskedStream(saved[0], redactor), MaskedStream(saved[1], redactor)
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved
        for stream in (out, err):
            with contextlib.suppress(Exception):
                stream.flush()
