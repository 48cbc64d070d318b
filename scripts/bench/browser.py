"""Headless Chromium opens a page from a local server and reports what the page posts back."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def find_chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)


class _Handler(SimpleHTTPRequestHandler):
    reports: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:  # the page's report: keep it, answer 204
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.reports.append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def open_page(root: Path, path: str, timeout: float = 120) -> tuple[dict[str, str], bytes]:
    """Serve ``root``, open ``http://127.0.0.1:PORT/path`` in headless Chromium (``{report}`` in ``path``
    becomes the URL to post to) and return the first report's headers and body."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.reports = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    url = f"{base}/{path.replace('{report}', base + '/report')}"
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen([find_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--disable-dev-shm-usage", f"--user-data-dir={profile}", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + timeout
            while not server.reports and time.time() < deadline and browser.poll() is None:  # type: ignore[attr-defined]
                time.sleep(0.2)
        finally:
            browser.kill()
            log = browser.communicate()[1].decode(errors="replace")
            server.shutdown()
    assert server.reports, f"the page posted nothing within {timeout} s; Chromium said: {log[-2000:]}"  # type: ignore[attr-defined]
    return server.reports[0]  # type: ignore[attr-defined]
