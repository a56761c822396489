"""Masking secret values in everything a run records or shows, as CI systems mask logs.

A :class:`Redactor` holds the values of the secrets a run could see and replaces
each occurrence with :data:`MASK`: in text, recursively in JSON-like values
(dict keys too) and so in error infos and their nested causes.

The rules, and why:

* **Length.** A value of :data:`MIN_LENGTH` (4) characters or more is masked
  wherever it occurs. A shorter one would mask every occurrence of, say, ``a``
  or ``id`` in unrelated text and make history unreadable, while giving no
  protection (such a secret is guessed in a few thousand tries). A short value is
  still never kept verbatim where it can be told apart: a string (or key) that
  *is* exactly the value becomes :data:`MASK`. Empty values mask nothing.
* **Lines.** A multi-line value (a PEM key, a kubeconfig) is masked whole, and
  each of its lines of :data:`MIN_LENGTH` characters or more is masked as well:
  output that is split or re-wrapped per line (logs, a traceback quoting one
  line) leaks no line.
* **Encodings.** Besides the value itself, the forms in which it commonly
  reaches text are masked: JSON-escaped and ``repr``-escaped (a dict or string
  quoted in an exception message: ``\\n``, ``\\"``, ``\\u00e9``), URL-encoded
  (``quote`` and ``quote_plus``: a query string, a connection URL), and base64
  (standard and URL-safe, with and without padding: a value encoded on its own,
  as a Basic-auth or a Kubernetes Secret's ``data`` field holds it). Base64 of a
  value *embedded* in a longer text (``user:password``) is shifted differently
  at each offset and is not recognised; neither are hashes, hex or any
  transformation the task applies itself.
* **Longest first.** All forms are matched by one regular expression whose
  alternatives are sorted longest first, so a secret that contains another is
  masked whole, not partly.

A redactor with no values is free: :meth:`Redactor.redact` returns its argument
as it is, and a value with nothing to mask is returned unchanged (the same
object), so runs without secrets keep exactly what they had.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_LENGTH = 4


def _utf8(text: str) -> bytes:
    try:
        # Environment values carry undecodable bytes as surrogate escapes.
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def secret_forms(value: str) -> set[str]:
    """Every text form of ``value`` masked inside longer text (short forms excluded)."""
    pieces = {value}
    if "\n" in value or "\r" in value:
        pieces.update(line for line in value.splitlines() if line.strip())
    forms: set[str] = set()
    for piece in pieces:
        forms.add(piece)
        forms.add(json.dumps(piece)[1:-1])
        forms.add(json.dumps(piece, ensure_ascii=False)[1:-1])
        forms.add(repr(piece)[1:-1])
        raw = _utf8(piece)
        forms.add(urllib.parse.quote_from_bytes(raw, safe=""))
        forms.add(urllib.parse.quote_plus(raw, safe=""))
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode("ascii")
            forms.add(text)
            forms.add(text.rstrip("="))
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Redactor:
    """The secret values of one run; masks them in what the run records or shows.

    Values can be added while the run goes on (each task's secrets as it
    resolves them); adding is thread-safe and never un-masks anything.
    """

    def __init__(self, values: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._exact: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if isinstance(v, str) and v} - self._values
        if not new:
            return
        with self._lock:
            values_now = self._values | new
            forms: set[str] = set()
            for value in values_now:
                forms |= secret_forms(value)
            pattern = (
                re.compile("|".join(re.escape(f) for f in sorted(forms, key=lambda f: -len(f))))
                if forms
                else None
            )
            # Published together, so a reader in another thread sees old or new, never half.
            self._pattern, self._exact, self._values = pattern, frozenset(values_now), values_now

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, text: str) -> str:
        """``text`` with every secret form masked (the same object when nothing is)."""
        if not self._values:
            return text
        if text in self._exact:
            return MASK
        pattern = self._pattern
        if pattern is None:
            return text
        # Masking can join the text around a match into a new occurrence
        # ("aa***" with the secret "a***"); every pass shortens the text, so
        # this ends, and the last pass is the check that nothing is left.
        masked, count = pattern.subn(MASK, text)
        while count:
            text = masked
            masked, count = pattern.subn(MASK, text)
        return MASK if text in self._exact else text

    def redact(self, value: Any) -> Any:
        """A JSON-like value (str, list, tuple, dict, scalars) with secrets masked.

        Unchanged parts are returned as they are; a value with nothing to mask is
        returned itself. Tuples come back as lists only when something in them
        changed. Two keys of a dict that mask to the same text are kept apart
        with a suffix (``***``, ``***#2``) so that no entry is lost.
        """
        if not self._values:
            return value
        return self._redact(value)

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            items = [self._redact(item) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return items
        if isinstance(value, dict):
            changed = False
            result: dict[Any, Any] = {}
            for key, item in value.items():
                new_key = self.text(key) if isinstance(key, str) else key
                new_item = self._redact(item)
                changed = changed or new_key is not key or new_item is not item
                if new_key in result:
                    new_key = _free_key(result, new_key)
                result[new_key] = new_item
            return result if changed else value
        return value

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds anything :meth:`text` would mask."""
        return self.text(text) != text


def _free_key(taken: dict[Any, Any], key: str) -> str:
    n = 2
    while f"{key}#{n}" in taken:
        n += 1
    return f"{key}#{n}"


NO_SECRETS = Redactor()
