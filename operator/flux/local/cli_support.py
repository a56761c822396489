"""What every ``flux`` command shares: exit codes, one-line errors, where results
and messages go, and reading ``--input``.

Kept apart from :mod:`flux.local.cli` so that the sub-apps it registers (``flux
kube``) use the same ones without importing the command module itself (under
``python -m flux.local.cli`` that would load it twice, with two ``CliError``).
"""

from __future__ import annotations

import os
import re
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console

from flux import codec
from flux.errors import CodecError


class ExitCode(IntEnum):
    SUCCEEDED = 0
    FAILED = 1  # the run failed or was cancelled
    USAGE = 2  # bad usage or input; nothing was run
    PAUSED = 3
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class CliError(Exception):
    """A problem the user can fix, shown as one line without a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE):
        super().__init__(message)
        self.code = code


InputOption = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        metavar="JSON",
        help="Input as JSON (Flux-tagged values such as datetimes are decoded).",
    ),
]
InputFileOption = Annotated[
    str | None,
    typer.Option(
        "--input-file",
        metavar="PATH",
        help="Read the input JSON from a file, or from stdin with `-` (for large inputs).",
    ),
]
ReferenceArgument = Annotated[
    str,
    typer.Argument(
        metavar="FILE:WORKFLOW", help="For example examples/hello.py:hello", show_default=False
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def say(message: str) -> None:
    """One line for people on stderr."""
    sys.stderr.write(re.sub(r"\s*\n\s*", " ", message.strip()) + "\n")
    sys.stderr.flush()


# Where results go once reserve_stdout() has moved everything else to stderr.
_results: TextIO | None = None


def results() -> TextIO:
    return _results or sys.stdout


def emit(text: str) -> None:
    """A result, on stdout."""
    out = results()
    out.write(text + "\n")
    out.flush()


def reserve_stdout() -> None:
    """Keep stdout for results: what tasks print (or their subprocesses) goes to stderr.

    Done at the file descriptor level, so ``flux run ... > out.json`` stays
    valid JSON whatever user code writes to stdout, from any thread or process.
    """
    global _results
    if _results is not None:
        return
    try:
        if sys.stdout.fileno() != 1:
            return  # stdout was replaced (as in tests): leave it be
        sys.stdout.flush()
        fd = os.dup(1)
    except (OSError, ValueError, AttributeError):
        return  # no usable stdout: nothing to protect
    encoding, errors = sys.stdout.encoding, sys.stdout.errors
    os.dup2(2, 1)
    _results = open(fd, "w", encoding=encoding, errors=errors, closefd=True)  # noqa: SIM115


def stdout_console() -> Console:
    # Piped output is for reading later: do not squeeze tables to 80 columns.
    out = results()
    return Console(file=out, highlight=False, width=None if out.isatty() else 200)


def read_input(text: str | None, path: str | None) -> str | None:
    """The input JSON text from --input, or from --input-file (``-``: stdin)."""
    if path is None:
        return text
    if text is not None:
        raise CliError("give the input with --input or --input-file, not both")
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        where = "stdin" if path == "-" else path
        raise CliError(f"--input-file: {where} is not valid UTF-8") from None
    except OSError as exc:
        raise CliError(f"--input-file: cannot read {path}: {exc.strerror or exc}") from None


def parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        data = codec.parse_json(text)
    except CodecError as exc:
        raise CliError(f"--input is not valid JSON: {exc}") from None
    try:
        # Plainly: the text is the user's, so it names no class to rebuild; the
        # workflow's declared input type validates it when the run is created.
        return codec.decode(data)
    except CodecError as exc:
        raise CliError(f"--input holds a value Flux cannot decode: {exc}") from None
