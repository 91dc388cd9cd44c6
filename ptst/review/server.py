"""The labelling page's HTTP server: one reviewer labels one run's review sample, on loopback unless told otherwise.

The page and its JSON carry the prompt, the answer, the opaque review id and this reviewer's own label only: never
the cell, a template, a judge or a verdict. Labels are checked with `labels.check` and appended (fsynced) with
`labels.add`; progress is read back from labels.jsonl on each request, so a reload resumes where the file says."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from ptst.errors import PtstError
from ptst.review.labels import Label, add, check, latest, now, read_labels
from ptst.review.page import CSP, PAGE
from ptst.review.sample import Answer, Sample, answers

MAX_BODY = 64 * 1024
MAX_NOTE = 4000
POST_KEYS = {"rid", "label", "note"}


class Desk:
    """One reviewer's view of the sample: the answers in review order and that reviewer's labels."""

    def __init__(self, run: str | Path, sample: Sample, reviewer: str) -> None:
        self.run, self.reviewer = Path(run), reviewer.strip()
        if not self.reviewer:
            raise PtstError("the labelling page needs a reviewer (give --reviewer NAME)")
        live = answers(self.run, sample)  # an answer changed since it was drawn is left out
        self.order: tuple[Answer, ...] = tuple(live[i.rid] for i in sample.items if i.rid in live)
        if not self.order:
            raise PtstError(f"{run}: no answer of the review sample is left to label (each changed since it was "
                            "drawn)")
        self.index = {a.rid: n for n, a in enumerate(self.order)}
        self._lock = threading.RLock()  # a read never sees half of this server's own append
        self.mine()  # a malformed labels.jsonl fails here, before the page is served

    def mine(self) -> dict[str, Label]:
        """rid -> this reviewer's latest label."""
        with self._lock:
            labels = read_labels(self.run)
        return {rid: by[self.reviewer] for rid, by in latest(labels).items() if self.reviewer in by}

    def _view(self, i: int | None, mine: dict[str, Label]) -> dict[str, Any]:
        item = None
        if i is not None:
            a, lab = self.order[i], mine.get(self.order[i].rid)
            item = {"index": i, "rid": a.rid, "prompt": a.prompt, "answer": a.answer,
                    "label": lab.label if lab else None, "note": lab.note if lab else ""}
        return {"total": len(self.order), "labelled": sum(a.rid in mine for a in self.order), "item": item}

    def _unlabelled(self, mine: dict[str, Label], start: int = 0) -> int | None:
        n = len(self.order)
        return next((j % n for j in range(start, start + n) if self.order[j % n].rid not in mine), None)

    def state(self) -> dict[str, Any]:
        """Progress and this reviewer's first unlabelled item (None when every one is labelled)."""
        mine = self.mine()
        return self._view(self._unlabelled(mine), mine)

    def item(self, query: str) -> dict[str, Any]:
        raw = parse_qs(query).get("i", [""])
        try:
            i = int(raw[-1])
        except ValueError:
            raise PtstError(f"i must be an item number, got {raw[-1]!r}") from None
        if not 0 <= i < len(self.order):
            raise PtstError(f"no item {i} (the sample has {len(self.order)}: 0 to {len(self.order) - 1})")
        return self._view(i, self.mine())

    def label(self, body: Any) -> dict[str, Any]:
        """Store one label; the reply is the progress and the next unlabelled item after it."""
        if not isinstance(body, dict) or set(body) - POST_KEYS or not {"rid", "label"} <= set(body):
            raise PtstError("a label is a JSON object with rid, label and optionally note")
        if not all(isinstance(body.get(k, ""), str) for k in POST_KEYS):
            raise PtstError("rid, label and note must be strings")
        if len(body.get("note", "")) > MAX_NOTE:
            raise PtstError(f"the note is longer than {MAX_NOTE} characters")
        lab = check(Label(body["rid"], body["label"], self.reviewer, now(), body.get("note", "")), self.index,
                    "label")
        with self._lock:
            add(self.run, [lab])
            mine = self.mine()
        return self._view(self._unlabelled(mine, self.index[lab.rid] + 1), mine)


class Handler(BaseHTTPRequestHandler):
    """GET /, /api/state, /api/item?i=N; POST /api/label. Errors are JSON: {"error": "..."}."""

    server_version = "ptst-review"
    sys_version = ""

    @property
    def review(self) -> ReviewServer:
        return cast(ReviewServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the terminal shows the URL, not every request

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _host_ok(self) -> bool:
        """On loopback, only a request addressed to loopback: a web page on another name that resolves here
        (DNS rebinding) gets nothing."""
        if not self.review.loopback:
            return True
        host = self.headers.get("Host", "")
        name = host[1:host.find("]")] if host.startswith("[") else host.rpartition(":")[0] or host
        return name == "localhost" or _is_loopback(name)

    def _answer(self, act: Any) -> None:
        try:
            self._json(200, act())
        except PtstError as e:
            self._json(400, {"error": str(e)})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self._host_ok():
            return self._json(403, {"error": "requests must be addressed to this machine's loopback address"})
        url, desk = urlsplit(self.path), self.review.desk
        if url.path == "/":
            return self._send(200, PAGE.encode("utf-8"), "text/html; charset=utf-8")
        if url.path == "/api/state":
            return self._answer(desk.state)
        if url.path == "/api/item":
            return self._answer(lambda: desk.item(url.query))
        return self._json(404, {"error": f"no such page: {url.path}"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if not self._host_ok():
            return self._json(403, {"error": "requests must be addressed to this machine's loopback address"})
        if urlsplit(self.path).path != "/api/label":
            return self._json(404, {"error": f"no such endpoint: {self.path}"})
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            return self._json(403, {"error": "a label comes from the labelling page only"})
        if self.headers.get_content_type() != "application/json":
            return self._json(400, {"error": "send the label as application/json"})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._json(400, {"error": "a Content-Length is needed"})
        if not 0 <= length <= MAX_BODY:
            return self._json(400, {"error": f"a label is at most {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return self._json(400, {"error": f"not JSON: {e}"})
        return self._answer(lambda: self.review.desk.label(body))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ReviewServer(ThreadingHTTPServer):
    """The page's server; `url` is where it listens (port 0 binds a free port)."""

    daemon_threads = True

    def __init__(self, desk: Desk, host: str = "127.0.0.1", port: int = 0) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.desk = desk
        try:
            super().__init__((host, port), Handler)
        except OSError as e:  # a port in use, an address not on this machine, a name that does not resolve
            raise PtstError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
        bound = str(self.server_address[0])
        self.loopback = _is_loopback(bound)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
