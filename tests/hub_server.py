"""A local stand-in for the Hugging Face Hub, speaking as much of its HTTP API as huggingface_hub's
``snapshot_download`` and ``list_repo_tree`` use, for tests run with ``HF_ENDPOINT`` pointing here:

    GET  /api/models/{repo}/tree/{revision}?recursive=...   the listing: size, git blob id, LFS sha256
    HEAD /{repo}/resolve/{revision}/{path}                  X-Repo-Commit, ETag / X-Linked-Etag, size
    GET  /{repo}/resolve/{revision}/{path}                  the file; ``Range: bytes=N-`` answered 206

A repository is a folder of files served at one commit. Gated repositories answer 401 without a token
and 403 with a wrong one (X-Error-Code: GatedRepo), as the Hub does; an unknown repository is 404
RepoNotFound, an unknown revision 404 RevisionNotFound. Files at least ``LFS_FROM`` bytes long are LFS
files (listed with their sha256). ``cut_once`` names a file whose first download is cut off half-way
(the connection closes), as a dropped connection does. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_FROM = 1024


@dataclass
class Repo:
    folder: Path
    commit: str
    token: str | None = None  # gated: this token is needed


@dataclass
class Hub:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    cut_once: set[str] = field(default_factory=set)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Hub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def entry(path: str, data: bytes) -> dict:
    doc = {"type": "file", "oid": blob_id(data), "size": len(data), "path": path}
    if len(data) >= LFS_FROM:
        doc["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return doc


class _Handler(BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        self.hub.requests.append(
            {
                "method": self.command,
                "path": url.path,
                "range": self.headers.get("Range"),
                "authorization": self.headers.get("Authorization"),
            }
        )
        if parts[:2] == ["api", "models"] and "tree" in parts:
            at = parts.index("tree")
            repo, revision = "/".join(parts[2:at]), parts[at + 1]
            return self._tree(repo, revision)
        if "resolve" in parts:
            at = parts.index("resolve")
            repo, revision, path = "/".join(parts[:at]), parts[at + 1], "/".join(parts[at + 2 :])
            return self._file(repo, revision, path, body)
        self._error(404, "EntryNotFound")

    def _repo(self, name: str, revision: str) -> Repo | None:
        repo = self.hub.repos.get(name)
        if repo is None:
            self._error(404, "RepoNotFound")
            return None
        if repo.token is not None:
            given = self.headers.get("Authorization")
            if given is None:
                self._error(401, "GatedRepo")
                return None
            if given != f"Bearer {repo.token}":
                self._error(403, "GatedRepo")
                return None
        if revision not in (repo.commit, "main"):
            self._error(404, "RevisionNotFound")
            return None
        return repo

    def _tree(self, name: str, revision: str) -> None:
        repo = self._repo(name, revision)
        if repo is None:
            return
        files = sorted(p for p in repo.folder.rglob("*") if p.is_file())
        doc = [entry(p.relative_to(repo.folder).as_posix(), p.read_bytes()) for p in files]
        self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def _file(self, name: str, revision: str, path: str, body: bool) -> None:
        repo = self._repo(name, revision)
        if repo is None:
            return
        f = repo.folder / path
        if not f.is_file():
            return self._error(404, "EntryNotFound")
        data = f.read_bytes()
        e = entry(path, data)
        etag = e["lfs"]["oid"] if "lfs" in e else e["oid"]
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if "lfs" in e:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        start = 0
        wanted = self.headers.get("Range")
        if wanted and body and wanted.startswith("bytes="):
            start = int(wanted[len("bytes=") :].split("-")[0])
        if not body:
            return self._send(200, b"", {**headers, "Content-Length": str(len(data))}, head=True)
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if path in self.hub.cut_once and not start:
            self.hub.cut_once.discard(path)
            self.send_response(200)
            for k, v in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the connection drops half-way through the file
            return
        self._send(status, data[start:], headers)

    def _error(self, status: int, code: str) -> None:
        self._send(
            status, json.dumps({"error": code}).encode(), {"X-Error-Code": code, "Content-Type": "application/json"}
        )

    def _send(self, status: int, data: bytes, headers: dict, head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)
