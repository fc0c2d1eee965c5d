"""A local fake Hugging Face hub for download tests: no network beyond 127.0.0.1.

Serves what ``hf_hub_download`` / ``snapshot_download`` (huggingface_hub 2.x) ask for:

* ``HEAD|GET /{repo}/resolve/{revision}/{filename}`` with ``X-Repo-Commit``, ``ETag`` (git sha1 of
  regular files; for LFS files the sha256, also as ``X-Linked-Etag`` with ``X-Linked-Size``),
  ``Content-Length`` and byte ``Range`` support (206 + ``Content-Range``);
* ``GET /api/models/{repo}/revision/{revision}`` and ``GET /api/models/{repo}/tree/{revision}``;
* gated repos: 401 (no token) or 403 (token without access) with ``X-Error-Code: GatedRepo``;
  unknown repos 401 ``RepoNotFound``, unknown files 404 ``EntryNotFound``.

``cut_after(repo, file, n)`` makes the next GET of that file send ``n`` body bytes and then drop
the connection, as a network failure would. Every request is recorded in ``requests``.
Tests import it as ``from fake_hub import FakeHub``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    gated: bool = False
    commit: str = ""

    def __post_init__(self) -> None:
        self.commit = self.commit or hashlib.sha1(self.repo_id.encode()).hexdigest()

    @staticmethod
    def is_lfs(filename: str) -> bool:
        return filename.endswith(LFS_SUFFIXES)

    def etag(self, filename: str) -> str:
        data = self.files[filename]
        return sha256(data) if self.is_lfs(filename) else git_sha1(data)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    granted_tokens: set[str] = field(default_factory=set)  # may read gated repos
    requests: list[Seen] = field(default_factory=list)
    _cuts: dict[tuple[str, str], int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- setup

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, gated: bool = False) -> FakeRepo:
        repo = FakeRepo(repo_id, dict(files), gated=gated)
        self.repos[repo_id] = repo
        return repo

    def cut_after(self, repo_id: str, filename: str, nbytes: int) -> None:
        """The next GET of this file stops after ``nbytes`` body bytes and drops the connection."""
        self._cuts[(repo_id, filename)] = nbytes

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- queries for assertions

    def gets(self, filename: str) -> list[Seen]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + filename)]

    def ranges(self, filename: str) -> list[str]:
        return [r.headers["range"] for r in self.gets(filename) if "range" in r.headers]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def take_cut(self, repo_id: str, filename: str) -> int | None:
        with self._lock:
            return self._cuts.pop((repo_id, filename), None)


_RESOLVE = re.compile(r"^/(?P<repo>.+?)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_API = re.compile(r"^/api/models/(?P<repo>.+?)/(?P<kind>revision|tree)/(?P<revision>[^/]+)(?:/.*)?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: a cut is a plain close

        def log_message(self, format, *args) -> None:  # noqa: A002 - keep test output clean
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        # -- routing

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.record(Seen(self.command, path, {k.lower(): v for k, v in self.headers.items()}))
            if match := _RESOLVE.match(path):
                self._resolve(match["repo"], match["revision"], match["filename"], body)
            elif (match := _API.match(path)) and body:
                self._api(match["repo"], match["kind"], match["revision"])
            else:
                self._error(404, "EntryNotFound", "not found")

        def _repo(self, repo_id: str, revision: str) -> FakeRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found")
                return None
            if repo.gated and self._token() not in hub.granted_tokens:
                status = 403 if self._token() else 401
                self._error(status, "GatedRepo", f"Access to model {repo_id} is restricted.")
                return None
            if revision not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return None
            return repo

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            return auth.removeprefix("Bearer ").strip() or None

        # -- endpoints

        def _resolve(self, repo_id: str, revision: str, filename: str, body: bool) -> None:
            repo = self._repo(repo_id, revision)
            if repo is None:
                return
            if filename not in repo.files:
                self._error(404, "EntryNotFound", "Entry not found", commit=repo.commit)
                return
            data = repo.files[filename]
            start, end, status = 0, len(data) - 1, 200
            if body and (wanted := _RANGE.match(self.headers.get("Range", ""))):
                start = int(wanted[1])
                end = int(wanted[2]) if wanted[2] else len(data) - 1
                if start >= len(data):
                    self._error(416, None, "Range not satisfiable")
                    return
                status = 206
            part = data[start : end + 1]
            self.send_response(status)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{repo.etag(filename)}"')
            if repo.is_lfs(filename):
                self.send_header("X-Linked-Etag", f'"{repo.etag(filename)}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if not body:
                return
            cut = hub.take_cut(repo_id, filename)
            if cut is None:
                self.wfile.write(part)
                return
            self.wfile.write(part[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the client sees a short body
            self.close_connection = True

        def _api(self, repo_id: str, kind: str, revision: str) -> None:
            repo = self._repo(repo_id, revision)
            if repo is None:
                return
            if kind == "revision":
                payload: object = {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": repo.commit,
                    "private": False,
                    "gated": "manual" if repo.gated else False,
                    "siblings": [{"rfilename": name} for name in repo.files],
                }
            else:
                payload = [self._tree_entry(repo, name) for name in repo.files]
            self._json(200, payload)

        @staticmethod
        def _tree_entry(repo: FakeRepo, name: str) -> dict:
            data = repo.files[name]
            entry = {"type": "file", "path": name, "size": len(data), "oid": git_sha1(data)}
            if repo.is_lfs(name):
                entry["lfs"] = {"oid": sha256(data), "size": len(data), "pointerSize": 134}
            return entry

        # -- responses

        def _json(self, status: int, payload: object) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
            raw = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

    return Handler
