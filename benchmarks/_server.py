"""Rollgate served as in production for a benchmark: gunicorn (sync workers) with ``benchmarks.web_settings`` (the
production settings, DEBUG off) on a free port against the benchmark's database; wait until it answers, stop it
afterwards. ``Server.peak_rss_mb()`` reads each web worker's peak resident set (``VmHWM``) from /proc.

The clients send ``X-Forwarded-Proto: https`` as the TLS-terminating proxy of a deployment does (production
settings redirect plain HTTP), and keep one connection per thread.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _monitoring_setup import ROOT
from _worker import database_url

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def default_workers() -> int:
    """gunicorn's advice for sync workers, 2 × cores + 1, unless ``BENCH_WEB_WORKERS`` says otherwise (the smoke
    tests start two: each worker costs a Django start-up, which a tiny run would spend most of its time on)."""
    return int(os.environ.get("BENCH_WEB_WORKERS", 0)) or 2 * (os.cpu_count() or 1) + 1


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def worker_pids(self) -> list[int]:
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name is in parentheses and may hold spaces; the parent pid is the 2nd field after it.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                children.append(int(entry.name))
        return children

    def peak_rss_mb(self) -> float:
        """The largest peak resident set (``VmHWM``) among the web workers, in MiB."""
        peaks = []
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks, default=0.0)


@contextmanager
def gunicorn_server(*, run_id: str, redis_url: str, workers: int | None = None) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.web_settings",
        "ROLLGATE_BENCH_CELERY_RUN": run_id,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": f"{HOST},localhost",
        "DATABASE_URL": database_url(),
        # Persistent database connections, as a deployment sets them (the default 0 reconnects every request).
        "DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE", "60"),
        "CELERY_BROKER_URL": redis_url,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    log_path = Path(tempfile.gettempdir()) / f"bench-gunicorn-{run_id}.log"
    log = open(log_path, "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", f"--bind={HOST}:{port}",
         f"--workers={workers or default_workers()}", "--worker-class=sync", "--timeout=300",
         "--graceful-timeout=10"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = Server(process=process, port=port, log_path=log_path)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _wait_until_serving(server: Server, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = server.log_path.read_text()[-3000:]
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}: {output}")
        try:
            if Client(server.url).get("/bench/bare/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s: {server.log_path.read_text()[-3000:]}")


class Client:
    """One keep-alive HTTP connection (per thread: http.client is not thread-safe)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port = parsed.hostname or HOST, parsed.port or 80
        self.headers = {"X-Forwarded-Proto": "https", "Host": HOST}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
        return connection

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, OSError):
            connection.close()
            self._local.connection = None
            raise

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        return self.request("POST", path, body, "application/json")


def obtain_token(base_url: str, username: str, password: str) -> str:
    """A real API token, the way a sender gets one: POST /api/v1/auth/token/ with the user's password."""
    body = urllib.parse.urlencode({"username": username, "password": password}).encode()
    status, content = Client(base_url).request("POST", "/api/v1/auth/token/", body, "application/x-www-form-urlencoded")
    if status != 200:
        raise RuntimeError(f"token request answered {status}: {content[:500]!r}")
    return str(json.loads(content)["token"])


def make_api_user(username: str, role: str, password: str) -> None:
    """A user in ``role``'s group with ``password`` (the benchmark's own database)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.contrib.auth.models import Group, User

    user, _ = User.objects.get_or_create(username=username)
    # Hashed with a hasher the production settings accept (the benchmark process runs the test settings' MD5).
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(password, hasher.salt())
    user.save()
    user.groups.add(Group.objects.get(name=role))
