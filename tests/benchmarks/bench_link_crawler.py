"""Crawls/s through `link-crawler` end to end (Kafka, crawl, `issue_links.metadata`) against a
loopback site with realistic pages, and Plane's way in the same run.

The site: pages of ~50-200 kB of HTML with a <title> in the head and a favicon link (a 2 kB PNG);
every third page answers after 50-300 ms, the others at once. Ours: one consumer process on the
embedded stack, the events produced first, the clock started at the first committed link (the
group's first join is not counted) and stopped when every event is processed. Plane's way, as one
Celery worker process runs crawl_work_item_link_title: one link at a time, `requests.get` of the
page, a parse for the title and the icon link (stdlib html.parser; BeautifulSoup is not installed
here, and is slower), `requests.get` of the favicon, base64; no Celery or database (so the baseline
is flattered). Prints JSON. Not part of the test run: `make bench`.
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import replace
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import requests
from sqlalchemy import text

from services.link_crawler.samples import link
from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack
from shared.events import new_event
from shared.settings import Settings
from tests.benchmarks.emit import emit, summary
from tests.helpers import processed, seed, spawn_consumer, wait_until

CONSUMER = "link-crawler"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def page(n: int) -> bytes:
    filler = b"<p>" + b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20 + b"</p>\n"
    size = 50_000 + (n * 7919) % 150_000
    head = (
        b"<!doctype html><html><head><meta charset='utf-8'><title>Page %d of the docs</title>"
        b"<link rel='stylesheet' href='/s.css'><link rel='icon' href='/static/icon-%d.png'></head><body>\n"
        % (n, n % 10)
    )
    return head + filler * (size // len(filler)) + b"</body></html>"


def latency_s(n: int) -> float:
    return 0.05 + (n * 37 % 251) / 1000 if n % 3 == 0 else 0.0


class Site(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a real site's backlog, not socketserver's 5

    def __init__(self, pages: int) -> None:
        self.pages = [page(n) for n in range(pages)]

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/static/"):
                    body, kind = PNG, "image/png"
                else:
                    n = int(self.path.rsplit("/", 1)[1])
                    time.sleep(latency_s(n))
                    body, kind = outer.pages[n], "text/html; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        outer = self
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/docs/{n}"


class _Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title: str | None = None
        self.icon: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self._in_title = tag == "title"
        if (
            tag == "link"
            and self.icon is None
            and (found.get("rel") or "").lower() in ("icon", "shortcut icon")
        ):
            self.icon = found.get("href")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = self._in_title and tag != "title"


def plane_way(urls: list[str]) -> float:
    """Plane's crawl, one link at a time: seconds for all of them."""
    session = requests.Session()  # kinder than Plane's requests.get, which pools nothing
    started = time.perf_counter()
    for url in urls:
        response = session.get(url, timeout=1)
        head = _Head()
        head.feed(response.text)
        icon = session.get(urljoin(url, head.icon or "/favicon.ico"), timeout=1)
        meta = {
            "title": head.title,
            "favicon": "data:image/png;base64," + base64.b64encode(icon.content).decode(),
        }
        assert meta["title"], url
    return time.perf_counter() - started


def main(n: int = 2000) -> dict[str, object]:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    site = Site(n)
    urls = [site.url(k) for k in range(n)]
    baseline_s = plane_way(urls)
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    with EmbeddedStack(Settings.from_env(), state) as stack:
        s = replace(stack.settings, metrics_port=0, link_crawler_allowed_ips=("127.0.0.1/32",))
        prepare(s)
        from shared.db.engine import get_engine
        from shared.events.producer import EventProducer

        engine = get_engine(s.database_url)
        _users, (issue,) = seed(engine, 1)
        with engine.begin() as conn:
            ids = [link(conn, issue, url) for url in urls]
        events = [
            (str(i), new_event("plane.link_crawl.v1", {"id": str(i), "url": u}))
            for i, u in zip(ids, urls, strict=True)
        ]
        EventProducer(s).send_many("links", events)
        consumer = spawn_consumer(CONSUMER, s, LINK_CRAWLER_ALLOWED_IPS="127.0.0.1/32")
        try:
            wait_until(lambda: processed(engine, CONSUMER) > 0, timeout_s=120, interval_s=0.01)
            start, first = time.perf_counter(), processed(engine, CONSUMER)
            wait_until(lambda: processed(engine, CONSUMER) >= n, timeout_s=900, interval_s=0.05)
            elapsed = time.perf_counter() - start
        finally:
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(timeout=60)
        with engine.connect() as conn:
            titled = conn.scalar(
                text("SELECT count(*) FROM issue_links WHERE metadata->>'title' LIKE 'Page % of the docs'")
            )
        engine.dispose()
    site.shutdown()
    assert titled == n, f"{titled} of {n} links got their title"
    ours = round((n - first) / elapsed, 1)
    baseline = round(n / baseline_s, 1)
    return {
        "benchmark": "link-crawler",
        **summary(ours, baseline, "crawls/s"),
        "links": n,
        "timed_links": n - first,
        "seconds": round(elapsed, 3),
        "baseline_seconds": round(baseline_s, 3),
        "pages_with_latency": sum(1 for k in range(n) if latency_s(k)),
        "mean_page_kb": round(sum(len(p) for p in site.pages) / n / 1024, 1),
        "link_crawler_concurrency": s.link_crawler_concurrency,
        "consumer_processes": 1,
        "baseline_method": "Plane's way: requests + html.parser + favicon, one at a time, one process",
        "cpu_count": os.cpu_count(),
        "stack": "embedded (pgserver PostgreSQL, tansu), loopback site",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:2])
