"""Headless Chromium (Debian's package) driven from its command line, for console tests.

Each call is a fresh browser with a private profile that can resolve no host
but the loopback, so a page that needs anything from elsewhere (a CDN) fails
to show it. ``dom`` returns the document after its scripts ran (in virtual
time, so a page's timers fire without the test sleeping); ``screenshot`` keeps
a PNG as a test artefact.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from support.prerequisites import missing

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
    missing("chromium is not installed (make chromium installs Debian's package)")


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


class Session:
    """One headless Chromium for many pages, driven over the DevTools protocol on
    a pipe (``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3
    and 4, so no websocket client and no port). Loading a page here costs a
    navigation, not a browser start, which keeps a test of many pages short.
    One profile for every page the session loads; the same network rules as
    :class:`Browser`."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1200):
        self._profile = tempfile.TemporaryDirectory(prefix="flux-chromium-")
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()

        def wire() -> None:
            # In the child, before exec: the pipes become fds 3 and 4. Parked
            # above both first, so one dup2 cannot overwrite the other's source.
            parked = [os.dup2(fd, 100 + i) for i, fd in enumerate((to_browser, from_browser))]
            os.dup2(parked[0], 3)
            os.dup2(parked[1], 4)

        self._process = subprocess.Popen(
            [
                executable,
                *_QUIET,
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),  # subprocess closes the others after preexec_fn
            preexec_fn=wire,  # safe: this process starts no thread that could hold a lock
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._session = ""
        try:
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            attached = self._call("Target.attachToTarget", targetId=target, flatten=True)
            self._session = attached["sessionId"]
            self._call("Page.enable", session=True)
            self._call(
                "Emulation.setDeviceMetricsOverride",
                session=True,
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self.close()  # no browser left behind by a session that never started
            raise

    def dom(self, url: str) -> Page:
        """The document at ``url`` once its load event fired (its scripts ran)."""
        self._events.clear()
        navigated = self._call("Page.navigate", session=True, url=url)
        assert not navigated.get("errorText"), f"{url}: {navigated['errorText']}"
        self._wait_for("Page.loadEventFired")
        found = self._call(
            "Runtime.evaluate",
            session=True,
            expression="document.documentElement.outerHTML",
            returnByValue=True,
        )
        return Page(url, found["result"]["value"])

    def screenshot(self, name: str) -> Path:
        """The page loaded last, as a PNG test artefact."""
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{name}.png"
        data = self._call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        assert path.stat().st_size > 10_000, f"{path} looks blank"
        return path

    def close(self) -> None:
        os.close(self._to_browser)  # Chromium exits when its pipe closes
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._from_browser)
        self._profile.cleanup()

    def _call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                result: dict[str, Any] = reply.get("result") or {}
                return result
            if "method" in reply:
                self._events.append(reply)

    def _wait_for(self, event: str) -> None:
        while not any(e["method"] == event for e in self._events):
            reply = self._read()
            if "method" in reply:
                self._events.append(reply)

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            assert ready, "Chromium did not answer within 60 s"
            chunk = os.read(self._from_browser, 1 << 20)
            assert chunk, f"Chromium exited (code {self._process.poll()})"
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed


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
