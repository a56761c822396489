"""Headless Chromium (Debian's package) driven from its command line, for console tests.

Each call is a fresh browser with a private profile that can resolve no host
but the loopback, so a page that needs anything from elsewhere (a CDN) fails
to show it. ``dom`` returns the document after its scripts ran (in virtual
time, so a page's timers fire without the test sleeping); ``screenshot`` keeps
a PNG as a test artefact.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get("FLUX_TEST_ARTEFACTS") or REPO / "test-artefacts")

_QUIET = [
    "--headless",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def chromium_path() -> str:
    """The browser, or a failure in CI (where `make local` installs it), else a skip."""
    found = shutil.which("chromium")
    if found:
        return found
    message = "chromium is not installed (make chromium installs Debian's package)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class Browser:
    executable: str
    width: int = 1400
    height: int = 1200

    def _run(self, url: str, *action: str) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="flux-chromium-") as profile:
            return subprocess.run(
                [
                    self.executable,
                    *_QUIET,
                    f"--user-data-dir={profile}",
                    f"--window-size={self.width},{self.height}",
                    *action,
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=90,
                check=False,
            )

    def dom(self, url: str, wait_ms: int = 0) -> Page:
        flags = ["--dump-dom"]
        if wait_ms:
            flags.append(f"--virtual-time-budget={wait_ms}")
        result = self._run(url, *flags)
        assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
        return Page(url, result.stdout)

    def screenshot(self, url: str, name: str) -> Path:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{name}.png"
        path.unlink(missing_ok=True)
        result = self._run(url, f"--screenshot={path}")
        assert result.returncode == 0 and path.is_file(), result.stderr[-2000:]
        assert path.stat().st_size > 10_000, f"{path} looks blank"
        return path


@dataclass
class Page:
    url: str
    dom: str

    def by_id(self, element_id: str) -> str:
        """The text of the element with this id (its descendants' text joined)."""
        finder = _TextOf(lambda attrs: attrs.get("id") == element_id)
        finder.feed(self.dom)
        assert finder.found, f"no element #{element_id} on {self.url}"
        return finder.text()

    def attribute(self, element_id: str, name: str) -> str | None:
        match = re.search(rf'<[^>]*\bid="{re.escape(element_id)}"[^>]*>', self.dom)
        assert match, f"no element #{element_id} on {self.url}"
        value = re.search(rf'\b{re.escape(name)}="([^"]*)"', match.group(0))
        return html.unescape(value.group(1)) if value else None

    def attribute_of(self, key: str, value: str, name: str) -> str | None:
        """Attribute ``name`` of the first element whose ``key`` attribute is ``value``."""
        match = re.search(rf'<[^>]*\b{key}="{re.escape(html.escape(value))}"[^>]*>', self.dom)
        assert match, f"no element with {key}={value!r} on {self.url}"
        found = re.search(rf'\b{re.escape(name)}="([^"]*)"', match.group(0))
        return html.unescape(found.group(1)) if found else None

    def rows(self, attribute: str) -> dict[str, str]:
        """Elements carrying ``attribute``, by its value: their text."""
        rows: dict[str, str] = {}
        for value in dict.fromkeys(re.findall(rf'\b{attribute}="([^"]*)"', self.dom)):
            key = html.unescape(value)
            finder = _TextOf(lambda attrs, key=key: attrs.get(attribute) == key)
            finder.feed(self.dom)
            rows[key] = finder.text()
        return rows

    def text(self) -> str:
        finder = _TextOf(lambda attrs: True, whole=True)
        finder.feed(self.dom)
        return finder.text()


class _TextOf(HTMLParser):
    def __init__(self, match: object, whole: bool = False):
        super().__init__(convert_charrefs=True)
        self._match = match
        self._depth = 1 if whole else 0
        self._skip = 0
        self.found = whole
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag in _VOID:
            return
        if self._depth:
            self._depth += 1
        elif self._match({k: v or "" for k, v in attrs}):  # type: ignore[operator]
            self.found = True
            self._depth = 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        if self._depth and tag not in _VOID:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


_VOID = {"br", "hr", "img", "input", "link", "meta", "source", "wbr", "col", "area", "base"}
