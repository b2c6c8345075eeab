"""A small Chrome DevTools Protocol client for the report page's browser tests.

Drives Debian's ``/usr/bin/chromium`` (installed by ``scripts/setup-dev.sh``; no browser is
downloaded) headless, over the DevTools websocket with ``websocket-client``. It records what the
tests check: console errors, uncaught exceptions, and every network request the page makes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--disable-sync", "--mute-audio", "--hide-scrollbars", "--remote-allow-origins=*")


class BrowserError(Exception):
    pass


class Chromium:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        if not os.path.exists(CHROMIUM):
            raise BrowserError(f"{CHROMIUM} is missing: run scripts/setup-dev.sh (it installs Debian's chromium)")
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="cloudeval-chromium-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self._id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        import websocket  # websocket-client (dev extra)

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                      f"--window-size={self.width},{self.height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        port = None
        while time.monotonic() < deadline and port is None:
            line = self.proc.stderr.readline().decode(errors="replace")
            if not line and self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}")
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
        if port is None:
            raise BrowserError("chromium did not print its DevTools address within 30 s")
        threading.Thread(target=self._drain, daemon=True).start()  # keep its stderr pipe from filling
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        for _ in range(50):
            targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            time.sleep(0.1)
        else:
            raise BrowserError("chromium has no page target")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True,
                                              http_no_proxy=["127.0.0.1", "localhost"])
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height, deviceScaleFactor=1,
                  mobile=False)

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for _ in iter(self.proc.stderr.readline, b""):
            pass

    def _read(self) -> None:
        while not self._closed:
            try:
                message = json.loads(self.ws.recv())
            except Exception:  # noqa: BLE001 - the socket closed
                return
            with self._lock:
                if "id" in message:
                    self._replies[message["id"]] = message
                else:
                    self.events.append(message)

    def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        with self._lock:
            self._id += 1
            mid = self._id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                reply = self._replies.pop(mid, None)
            if reply is not None:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            time.sleep(0.005)
        raise BrowserError(f"{method}: no reply within {timeout} s")

    # -- page helpers -----------------------------------------------------------------------------
    def navigate(self, url: str, ready_js: str = "document.body && document.body.dataset.ready === '1'",
                 timeout: float = 60.0) -> float:
        """Open ``url`` and wait until ``ready_js`` is true; returns the seconds it took."""
        started = time.monotonic()
        self.send("Page.navigate", url=url)
        self.wait_for(ready_js, timeout)
        return time.monotonic() - started

    def eval(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression}: {reply['exceptionDetails']}")
        return reply.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.eval(expression):
                    return
            except BrowserError:
                pass
            time.sleep(0.05)
        raise BrowserError(f"not true within {timeout} s: {expression}")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": min(float(size["height"]), 6000.0),
                              "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def console_errors(self) -> list[str]:
        with self._lock:
            events = list(self.events)
        errors = []
        for e in events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(json.dumps(params.get("args", []))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(str(params["entry"].get("text"))[:500])
        return errors

    def requests(self) -> list[str]:
        with self._lock:
            return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def clear_events(self) -> None:
        with self._lock:
            self.events.clear()

    def close(self) -> None:
        self._closed = True
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)
