"""Two servers on 127.0.0.1: a real `transformers serve` with the embedded model, and a scripted one.

The scripted server speaks the same two routes (``GET /v1/models``, ``POST /v1/chat/completions``)
and answers each chat request with the next scripted status, or echoes the last user message;
it produces on demand what a real server does only by accident (500s, 429s, dropped
connections, empty replies) and counts what it was asked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import MODEL_CACHE

SERVER_START_TIMEOUT = 180  # seconds; ~5 s on a quiet 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ScriptedServer:
    """``script``: what the next chat requests get, in order: an HTTP status, ``"empty"`` or ``"drop"``."""

    model: str = "scripted-model"
    script: list = field(default_factory=list)
    requests: list = field(default_factory=list)  # (path, lower-cased headers, body) of every request, in arrival order
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def chat_requests(self) -> list[dict]:
        return [body for path, _, body in self.requests if path.endswith("/chat/completions")]

    def next_action(self):
        with self.lock:
            return self.script.pop(0) if self.script else 200


def _handler(server: ScriptedServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with server.lock:
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, None))
            if self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with server.lock:
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            action = server.next_action()
            if action == "drop":  # the server goes away mid-request
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(action, int) and action != 200:
                self._send(action, {"error": {"message": f"scripted status {action}", "code": action}})
                return
            last_user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
            if last_user.startswith("slow"):
                time.sleep(0.3)
            content = "" if action == "empty" else f"echo: {last_user}"
            self._send(
                200,
                {
                    "id": "scripted",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                    ],
                },
            )

    return Handler


@pytest.fixture
def scripted_server():
    state = ScriptedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@dataclass(frozen=True)
class RealServer:
    base_url: str
    model: str
    log: Path
    startup_s: float


@pytest.fixture(scope="session")
def transformers_server(tmp_path_factory):
    """`transformers serve` on the embedded model, offline, on a free port; started once, stopped at the end."""
    pytest.importorskip(
        "fastapi", reason="transformers[serving] is not installed (pip install 'transformers[serving]')"
    )
    pytest.importorskip(
        "uvicorn", reason="transformers[serving] is not installed (pip install 'transformers[serving]')"
    )
    cli = Path(sys.executable).with_name("transformers")
    if not cli.exists():
        pytest.skip(f"the transformers CLI is not installed next to {sys.executable}")
    from retraction_kedro.lm.loading import materialize_embedded_model

    model_dir = materialize_embedded_model(MODEL_CACHE)
    port = free_port()
    log = tmp_path_factory.mktemp("transformers_serve") / "serve.log"
    # One torch thread: with the test process and other jobs on the same cores, two spinning OpenMP threads
    # made a judge request ~6x slower (35 s against 5.9 s, median of 3 alternating, 2 cores, load ~5.6).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), str(model_dir)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process, log)
        yield RealServer(f"http://127.0.0.1:{port}/v1", str(model_dir), log, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"transformers serve did not answer {url} within {SERVER_START_TIMEOUT} s:\n{log.read_text()[-3000:]}"
    )
