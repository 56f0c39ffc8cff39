"""Headless Chromium for the reports: PDF printing, and page inspection for tests.

Two ways in:

* :func:`print_pdf_cli` runs ``chromium --headless --print-to-pdf`` once per file (simple,
  ~1 s of browser start-up per report);
* :class:`HeadlessBrowser` starts one browser and speaks the Chrome DevTools Protocol over a
  pipe (``--remote-debugging-pipe``: no port is opened, no extra package needed). The report
  stage prints a whole board through it, and tests use it to read the rendered DOM, record
  every network request the page attempts, take screenshots and print to PDF.

Both pass flags that keep the browser off the network (no background fetches, no component
updates) and a throw-away profile folder, so concurrent runs never share state.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pipelines.lakehouse.errors import EnvironmentProblem

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
]


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: ``ONCORANK_CHROMIUM``, Debian's, or one on PATH."""
    env = os.environ.get("ONCORANK_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome",
                 "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _check_pdf(pdf: Path) -> None:
    if not pdf.is_file() or pdf.read_bytes()[:5] != b"%PDF-":
        raise EnvironmentProblem(f"Chromium did not write a PDF to {pdf}; print the HTML "
                                 "report from a browser instead.")


def print_pdf_cli(html: Path, pdf: Path, chromium: str, timeout: float = 120) -> Path:
    """Print one HTML file to PDF with ``chromium --headless --print-to-pdf``."""
    with tempfile.TemporaryDirectory(prefix="oncorank-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={pdf}", Path(html).absolute().as_uri()]
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"Chromium took over {timeout:.0f} s to print {html}; "
                                     "the HTML report is still there.") from None
    _check_pdf(pdf)
    return pdf


class CdpError(EnvironmentProblem):
    """The browser did not answer a DevTools command as expected."""


class HeadlessBrowser:
    """One headless Chromium driven over the DevTools protocol (pipe transport).

    >>> with HeadlessBrowser() as browser:  # doctest: +SKIP
    ...     page = browser.open(Path("report.html").absolute().as_uri())
    ...     page.evaluate("document.title"), page.requests
    """

    def __init__(self, chromium: str | None = None, timeout: float = 60.0,
                 window: tuple[int, int] = (1200, 1600)):
        self.chromium = chromium or find_chromium()
        if not self.chromium:
            raise EnvironmentProblem("Chromium is not installed (looked for /usr/bin/chromium "
                                     "and chromium on PATH); install Debian's `chromium`.")
        self.timeout = timeout
        self.window = window
        self._id = 0
        self._buf = b""
        self._events: list[dict] = []
        self._proc: subprocess.Popen | None = None
        self._profile: tempfile.TemporaryDirectory | None = None

    # ------------------------------------------------------------------ process
    def __enter__(self) -> HeadlessBrowser:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="oncorank-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # The browser expects the pipe on fds 3 (commands in) and 4 (replies out). Move our ends
        # above 10 so the shell's redirections cannot clobber one with the other, and let the
        # shell place them (bash: dash cannot name fds above 9): no preexec_fn, which is unsafe
        # in a process with JVM threads.
        hi_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        cmd = ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{hi_r} 4>&{hi_w} {hi_r}<&- {hi_w}>&-',
               self.chromium, *FLAGS, f"--user-data-dir={self._profile.name}",
               "--remote-debugging-pipe", f"--window-size={self.window[0]},{self.window[1]}",
               "about:blank"]
        self._proc = subprocess.Popen(cmd, pass_fds=(hi_r, hi_w), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(hi_r)
        os.close(hi_w)
        self._out = to_browser_w
        self._in = from_browser_r
        self.call("Browser.getVersion")

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._send("Browser.close")
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, CdpError):
                self._proc.kill()
                self._proc.wait(timeout=10)
            for fd in (self._out, self._in):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._proc = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    # ------------------------------------------------------------------ protocol
    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                n = os.write(self._out, data)
                data = data[n:]
        except OSError as exc:
            raise CdpError(f"Chromium closed its DevTools pipe ({exc}).") from None
        return self._id

    def _next_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"Chromium did not answer within {self.timeout:.0f} s.")
            ready, _, _ = select.select([self._in], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise CdpError("Chromium exited while a DevTools command was pending.")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result (events seen meanwhile are kept)."""
        want = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._next_message(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise CdpError(f"DevTools {method} failed: {msg['error'].get('message')}")
                return msg.get("result", {})
            self._events.append(msg)

    def wait_event(self, method: str, session: str | None = None) -> dict:
        """Wait for (and consume) the next event ``method`` of ``session``."""
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method and (session is None
                                                   or ev.get("sessionId") == session):
                    return self._events.pop(i)
            self._events.append(self._next_message(deadline))

    def events(self, session: str, method: str | None = None) -> list[dict]:
        return [e for e in self._events if e.get("sessionId") == session
                and (method is None or e.get("method") == method)]

    # ------------------------------------------------------------------ pages
    def open(self, url: str) -> Page:
        """Open ``url`` in a new tab and wait for its load event."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]
        page = Page(self, target, session)
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", {}, session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.window[0], "height": self.window[1], "deviceScaleFactor": 1,
                   "mobile": False}, session)
        self.call("Page.navigate", {"url": url}, session)
        self.wait_event("Page.loadEventFired", session)
        return page

    def print_pdfs(self, pairs: list[tuple[Path, Path]]) -> list[Path]:
        """Print each (html, pdf) pair through this one browser; returns the PDFs written."""
        written = []
        for html, pdf in pairs:
            page = self.open(Path(html).absolute().as_uri())
            try:
                Path(pdf).write_bytes(page.print_pdf())
            finally:
                page.close()
            _check_pdf(Path(pdf))
            written.append(Path(pdf))
        return written


class Page:
    """One tab: evaluate JavaScript, read the requests it made, screenshot, print."""

    def __init__(self, browser: HeadlessBrowser, target: str, session: str):
        self.browser, self.target, self.session = browser, target, session

    def evaluate(self, expression: str):
        res = self.browser.call("Runtime.evaluate", {"expression": expression,
                                                     "returnByValue": True,
                                                     "awaitPromise": True}, self.session)
        if "exceptionDetails" in res:
            raise CdpError(f"Script failed in the page: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    @property
    def requests(self) -> list[str]:
        """URL of every request the page attempted (blocked ones included)."""
        return [e["params"]["request"]["url"]
                for e in self.browser.events(self.session, "Network.requestWillBeSent")]

    @property
    def console_messages(self) -> list[str]:
        out = [e["params"]["entry"].get("text", "")
               for e in self.browser.events(self.session, "Log.entryAdded")]
        out += [" ".join(str(a.get("value", "")) for a in e["params"].get("args", []))
                for e in self.browser.events(self.session, "Runtime.consoleAPICalled")]
        return out

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            w, h = self.evaluate("[document.documentElement.scrollWidth,"
                                 " document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        data = self.browser.call("Page.captureScreenshot", params, self.session)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def print_pdf(self) -> bytes:
        data = self.browser.call("Page.printToPDF", {"printBackground": True,
                                                     "preferCSSPageSize": True,
                                                     "displayHeaderFooter": False},
                                 self.session)["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        self.browser.call("Target.closeTarget", {"targetId": self.target})
        self.browser._events = [e for e in self.browser._events
                                if e.get("sessionId") != self.session]
