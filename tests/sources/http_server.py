"""A file server on 127.0.0.1 (a free port, its own thread) standing in for the paper's repository."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileHandler(BaseHTTPRequestHandler):
    """Serves ``files`` (URL path -> bytes); ``claimed_length`` announces another Content-Length (a cut
    connection); ``requests`` records every path asked for."""

    files: dict[str, bytes] = {}
    claimed_length: dict[str, int] = {}
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server API
        self.requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(self.claimed_length.get(self.path, len(body))))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@contextmanager
def serve_files(prefix: str = "/data/") -> Iterator[tuple[type[FileHandler], str]]:
    """The handler class (fill its ``files`` with ``prefix + <path>``) and the base URL ending in ``prefix``."""
    handler = type("Handler", (FileHandler,), {"files": {}, "claimed_length": {}, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{httpd.server_address[1]}{prefix}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
