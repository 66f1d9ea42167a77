"""A stand-in for the Hugging Face hub: a real HTTP server on 127.0.0.1, reached via HF_ENDPOINT.

It answers the calls the download path makes, shaped as the hub answers them: model info with
file metadata (`/api/models/{repo}/revision/{rev}?blobs=true`), the tree listing, pull-request
discussions, and `/{repo}/resolve/{rev}/{file}`, where large (LFS) files redirect to a CDN path
that honours Range requests. Faults are switched on per test: HTTP 500s, a connection cut after
some bytes (and then refused), a slow line, a size claimed larger than any disk.
It counts the bytes it sends for each file, so tests can say how much a resume fetched.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".bin", ".safetensors", ".pt", ".ckpt")


@dataclass
class HubFile:
    name: str
    data: bytes
    claimed_size: int | None = None  # what the metadata says, when a test wants it to lie big
    listed_sha256: str | None = None  # the hash the metadata lists, when it should not match

    @property
    def lfs(self) -> bool:
        return self.name.endswith(LFS_SUFFIXES) or self.claimed_size is not None

    @property
    def size(self) -> int:
        return self.claimed_size if self.claimed_size is not None else len(self.data)

    @property
    def sha256(self) -> str:
        return self.listed_sha256 or self._hashes()[0]

    @property
    def blob_id(self) -> str:
        return self._hashes()[1]

    def _hashes(self) -> tuple[str, str]:
        """Hashed once per content: the full-size model is 776 MB, listed on every call."""
        memo = self.__dict__.get("_memo")
        if memo is None or memo[0] is not self.data:
            git = hashlib.sha1(f"blob {len(self.data)}\0".encode())  # noqa: S324 - git's id
            git.update(self.data)
            memo = (self.data, hashlib.sha256(self.data).hexdigest(), git.hexdigest())
            self.__dict__["_memo"] = memo
        return memo[1], memo[2]


@dataclass
class Repo:
    refs: dict[str, str] = field(default_factory=dict)  # "main", "refs/pr/1" -> commit
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    discussions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Faults:
    status: int | None = None  # answer every request with this status
    status_paths: tuple[str, ...] = ()  # ... only when the path contains one of these
    cut_after: int | None = None  # close a file transfer after this many bytes of it
    dead_after_cut: bool = False  # and drop every later file transfer without an answer
    cut_done: bool = False
    bytes_per_s: float | None = None  # a slow line for file transfers


class StandinHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.faults = Faults()
        self.served: Counter[str] = Counter()  # file name -> bytes of body sent
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            standin = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandinHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- repositories -----------------------------------------------------------------------------
    def add_commit(self, repo_id: str, files: dict[str, bytes | Path], ref: str = "main") -> str:
        repo = self.repos.setdefault(repo_id, Repo())
        hub_files = {name: HubFile(name, data if isinstance(data, bytes) else Path(data).read_bytes())
                     for name, data in files.items()}
        digest = hashlib.sha1(ref.encode())  # noqa: S324 - a commit id, as git makes one
        for name in sorted(hub_files):
            digest.update(name.encode() + hub_files[name].sha256.encode())
        commit = digest.hexdigest()
        repo.commits[commit] = hub_files
        repo.refs[ref] = commit
        return commit

    def add_conversion_pr(self, repo_id: str, added: dict[str, bytes | Path],
                          author: str = "SFconvertbot", status: str = "open") -> int:
        """A pull request branch: main's files plus `added`, opened by `author`."""
        repo = self.repos[repo_id]
        num = len(repo.discussions) + 1
        base = {n: f.data for n, f in repo.commits[repo.refs["main"]].items()}
        self.add_commit(repo_id, {**base, **added}, ref=f"refs/pr/{num}")
        repo.discussions.append({
            "num": num, "title": "Adding `safetensors` variant of this model",
            "author": {"name": author}, "createdAt": "2024-01-01T00:00:00.000Z",
            "status": status, "repo": {"name": repo_id, "type": "model"},
            "isPullRequest": True})
        return num

    def file(self, repo_id: str, name: str, ref: str = "main") -> HubFile:
        repo = self.repos[repo_id]
        return repo.commits[repo.refs.get(ref, ref)][name]


class _Handler(BaseHTTPRequestHandler):
    standin: StandinHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    # -- routing --------------------------------------------------------------------------------
    def _route(self, head: bool) -> None:
        hub = self.standin
        parsed = urlparse(self.path)
        path, query = unquote(parsed.path), parse_qs(parsed.query)
        with hub.lock:
            hub.requests.append((self.command, path))
        faults = hub.faults
        if faults.status and (not faults.status_paths
                              or any(p in path for p in faults.status_paths)):
            return self._json({"error": "stand-in fault"}, status=faults.status)
        if path.startswith("/api/models/"):
            return self._api(path[len("/api/models/"):], query)
        if path.startswith("/cdn/"):
            return self._cdn(path[len("/cdn/"):], head)
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id = "/".join(parts[:2])
            rev, name = self._split_rev(repo_id, parts[3:])
            return self._resolve(repo_id, rev, name, head)
        return self._json({"error": "not found"}, status=404)

    def _split_rev(self, repo_id: str, rest: list[str]) -> tuple[str, str]:
        # "refs/pr/1/model.safetensors" arrives unquoted: a revision may hold slashes.
        if rest[0] == "refs" and len(rest) >= 4:
            return "/".join(rest[:3]), "/".join(rest[3:])
        return rest[0], "/".join(rest[1:])

    def _commit(self, repo_id: str, rev: str) -> tuple[str, dict[str, HubFile]] | None:
        repo = self.standin.repos.get(repo_id)
        if repo is None:
            return None
        commit = repo.refs.get(rev, rev)
        files = repo.commits.get(commit)
        return (commit, files) if files is not None else None

    def _api(self, rest: str, query: dict[str, list[str]]) -> None:
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        tail = parts[2:]
        repo = self.standin.repos.get(repo_id)
        if repo is None:
            return self._json({"error": "Repository not found"}, status=404,
                              headers={"X-Error-Code": "RepoNotFound"})
        if tail and tail[0] == "discussions":
            found = [d for d in repo.discussions
                     if (not query.get("author") or d["author"]["name"] == query["author"][0])
                     and (not query.get("status") or d["status"] == query["status"][0])]
            return self._json({"discussions": found, "count": len(found), "start": 0})
        if tail and tail[0] in ("revision", "tree"):
            rev = "/".join(tail[1:]) or "main"
        else:
            rev = "main"
        found_commit = self._commit(repo_id, rev)
        if found_commit is None:
            return self._json({"error": "Revision not found"}, status=404,
                              headers={"X-Error-Code": "RevisionNotFound"})
        commit, files = found_commit
        if tail and tail[0] == "tree":
            return self._json([self._tree_entry(n, f) for n, f in sorted(files.items())])
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for name, f in sorted(files.items()):
            entry: dict[str, Any] = {"rfilename": name}
            if blobs:
                entry.update(size=f.size, blobId=f.blob_id)
                if f.lfs:
                    entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": 134}
            siblings.append(entry)
        return self._json({"id": repo_id, "modelId": repo_id, "sha": commit,
                           "private": False, "siblings": siblings})

    def _tree_entry(self, name: str, f: HubFile) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": f.blob_id, "size": f.size, "path": name}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
        return entry

    def _resolve(self, repo_id: str, rev: str, name: str, head: bool) -> None:
        found = self._commit(repo_id, rev)
        if found is None or name not in found[1]:
            return self._json({"error": "Entry not found"}, status=404,
                              headers={"X-Error-Code": "EntryNotFound"})
        commit, files = found
        f = files[name]
        common = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if f.lfs:  # as the hub does: the file lives on a CDN, named by its SHA-256
            location = f"{self.standin.url}/cdn/{f.sha256}?name={name}"
            headers = {**common, "Location": location, "ETag": f'"{f.blob_id}"',
                       "X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size),
                       "Content-Length": "0"}
            self._answer(302, headers, b"")
            return
        headers = {**common, "ETag": f'"{f.blob_id}"', "Content-Type": "application/octet-stream"}
        self._send_file(name, f.data, headers, head)

    def _cdn(self, sha256: str, head: bool) -> None:
        for repo in self.standin.repos.values():
            for files in repo.commits.values():
                for name, f in files.items():
                    if f.sha256 == sha256:
                        self._send_file(name, f.data, {"ETag": f'"{sha256}"'}, head,
                                        transfer=True)
                        return
        self._json({"error": "no such object"}, status=404)

    # -- answers --------------------------------------------------------------------------------
    def _send_file(self, name: str, data: bytes, headers: dict[str, str], head: bool,
                   transfer: bool = False) -> None:
        hub, faults = self.standin, self.standin.faults
        if transfer and faults.dead_after_cut and faults.cut_done and not head:
            self._drop()
            return
        start, status = 0, 200
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start = int(range_header[6:].split("-")[0] or 0)
            if start >= len(data):
                self._answer(416, {"Content-Range": f"bytes */{len(data)}",
                                   "Content-Length": "0"}, b"")
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if head:
            return
        limit = len(body)
        cut = transfer and faults.cut_after is not None and not faults.cut_done
        if cut:
            limit = max(0, min(limit, faults.cut_after - start))
        sent, step = 0, 64 * 1024
        import time

        try:
            while sent < limit:
                piece = body[sent:min(limit, sent + step)]
                self.wfile.write(piece)
                sent += len(piece)
                with hub.lock:
                    hub.served[name] += len(piece)
                if transfer and faults.bytes_per_s:
                    time.sleep(len(piece) / faults.bytes_per_s)
        except (BrokenPipeError, ConnectionResetError):
            return
        if cut and sent < len(body):
            faults.cut_done = True
            self._drop()

    def _drop(self) -> None:
        """End the connection at once, mid-answer or before one: what a dropped line looks like."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._answer(status, {"Content-Type": "application/json",
                              "Content-Length": str(len(body)), **(headers or {})}, body)


# -- test repositories built from a saved model ----------------------------------------------------
def model_files(model_folder: Path, weights: str = "safetensors") -> dict[str, bytes | Path]:
    """A saved CLAP's files as a hub repository holds them; weights as safetensors, as a
    `pytorch_model.bin` (torch.save of the same tensors), or none."""
    files: dict[str, bytes | Path] = {}
    for item in sorted(Path(model_folder).iterdir()):
        if item.is_file() and item.suffix != ".safetensors":
            files[item.name] = item
    files[".gitattributes"] = b"*.bin filter=lfs diff=lfs merge=lfs -text\n" \
                              b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    files["README.md"] = b"---\nlicense: apache-2.0\n---\nA stand-in CLAP for clapdesk's tests.\n"
    if weights == "safetensors":
        files["model.safetensors"] = Path(model_folder) / "model.safetensors"
    elif weights == "pickle":
        files["pytorch_model.bin"] = pickle_weights(Path(model_folder) / "model.safetensors")
    return files


def pickle_weights(safetensors_file: Path) -> bytes:
    """The same tensors as torch.save writes them (a zip holding a pickle): a real .bin."""
    import io

    import torch
    from safetensors.torch import load_file

    buffer = io.BytesIO()
    torch.save(load_file(str(safetensors_file)), buffer)
    return buffer.getvalue()


def real_processor_files(model_name: str) -> dict[str, bytes]:
    """The real repository's processor settings from ../shared/clap-configs, where present.

    Only the feature extractor's settings are taken (they decide how audio becomes the model's
    input); the tokenizer and config stay the tiny model's own, which they must match. A clone
    without ../shared gets {} and the tiny model's own files.
    """
    shared = Path(__file__).resolve().parents[2] / "shared" / "clap-configs" / model_name
    target = shared / "preprocessor_config.json"
    if not target.is_file():
        return {}
    return {"preprocessor_config.json": target.read_bytes()}
