"""link-crawler against real loopback servers and Plane's issue_links (R9, R10).

The crawler's allow-list opens 127.0.0.1 only (LINK_CRAWLER_ALLOWED_IPS, as an operator would
open an intranet); 127.0.0.2 stands for "private" and is a CountingListener, which proves a
refused hop was never dialled. The batch handler is called directly in a transaction, as the
batch runtime calls it (the broker path, replays included, is the conformance suite's and the
parallel test's); PostgreSQL and every HTTP exchange are real.
"""

from __future__ import annotations

import base64
import gzip
import socket
import time
import uuid
from dataclasses import replace

import psutil
import pytest
from sqlalchemy import Engine, text

from services.link_crawler import handler
from services.link_crawler.crawl import DEFAULT_FAVICON, Limits
from services.link_crawler.samples import link, metadata_of
from shared.db.engine import session_factory
from shared.events import Event, new_event
from shared.events.producer import EventProducer
from shared.kafka.handler import EventFailures, HandlerContext
from shared.settings import Settings
from shared.testing import plane_factory as make
from tests.helpers import processed, spawn_consumer, stop_processes, wait_until
from tests.integration.http_servers import (
    CountingListener,
    HttpServer,
    RawServer,
    read_request_head,
    redirect,
    running,
    send,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
NO_ICON = {"/favicon.ico": lambda h: send(h, 404, b"none")}
HTML = b"<html><head><title>  Plane docs </title><link rel='shortcut icon' href='/static/icon.png'></head>"


@pytest.fixture
def crawl_settings(settings: Settings) -> Settings:
    return replace(settings, link_crawler_allowed_ips=("127.0.0.1/32",), link_crawler_deadline_s=2.0)


@pytest.fixture
def issue(engine: Engine):  # type: ignore[no-untyped-def]
    return make.project_with_issues(engine, 1)[1][0]


def crawl(engine: Engine, settings: Settings, issue, url: str) -> tuple[dict, float]:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        link_id = link(conn, issue, url, created_by_id=issue.created_by_id, updated_by_id=issue.created_by_id)
    event = new_event("plane.link_crawl.v1", {"id": str(link_id), "url": url})
    started = time.monotonic()
    run_batch(settings, [event])
    return metadata_of(engine, link_id), time.monotonic() - started


def run_batch(settings: Settings, events: list[Event]) -> None:
    with session_factory(settings.database_url).begin() as session:
        handler.handle_batch(events, HandlerContext("link-crawler", settings, None, session))  # type: ignore[arg-type]


def fallback(url: str) -> dict:
    return {"title": None, "favicon": DEFAULT_FAVICON, "url": url, "favicon_url": None}


def test_title_and_favicon_in_plane_shape_audit_columns_kept(engine, crawl_settings, issue) -> None:
    site = HttpServer(
        routes={
            "/": lambda h: send(h, 200, HTML, {"Content-Type": "text/html; charset=utf-8"}),
            "/static/icon.png": lambda h: send(h, 200, PNG, {"Content-Type": "image/png"}),
        }
    )
    with running(site):
        meta, _ = crawl(engine, crawl_settings, issue, site.url("/"))
    assert meta == {
        "title": "Plane docs",
        "favicon": "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "url": site.url("/"),
        "favicon_url": site.url("/static/icon.png"),
    }
    with engine.connect() as conn:
        audit = conn.execute(text("SELECT created_by_id, updated_by_id FROM issue_links")).one()
    assert audit == (issue.created_by_id, issue.created_by_id), "Plane's save() nulls these; we must not"


def test_favicon_ico_fallback_and_one_crawl_per_url_in_a_batch(engine, crawl_settings, issue) -> None:
    site = HttpServer(
        routes={
            "/": lambda h: send(h, 200, b"<title>x</title>", {"Content-Type": "text/html"}),
            "/favicon.ico": lambda h: send(h, 200, b"ICO", {"Content-Type": "image/x-icon"}),
        }
    )
    with running(site):
        with engine.begin() as conn:
            link_id = link(conn, issue, site.url("/"))
        twice = [
            new_event("plane.link_crawl.v1", {"id": str(link_id), "url": site.url("/")}) for _ in range(2)
        ]
        run_batch(crawl_settings, twice)
        assert len(site.requests) == 2, "page and favicon, once for both events of the batch"
    meta = metadata_of(engine, link_id)
    assert meta["favicon"] == "data:image/x-icon;base64,SUNP" and meta["favicon_url"] == site.url(
        "/favicon.ico"
    )


def test_redirects_followed_up_to_five_hops_and_not_six(engine, crawl_settings, issue) -> None:
    page = lambda h: send(h, 200, b"<title>end</title>", {"Content-Type": "text/html"})  # noqa: E731
    site = HttpServer(routes=dict(NO_ICON))
    site.routes.update({f"/r{i}": redirect(site.url(f"/r{i + 1}")) for i in range(6)})
    site.routes["/r5"] = page
    site.routes["/r6"] = page
    with running(site):
        five, _ = crawl(engine, crawl_settings, issue, site.url("/r0"))
        site.routes["/r5"] = redirect(site.url("/r6"))
        six, _ = crawl(engine, crawl_settings, issue, site.url("/r0"))
    assert five["title"] == "end"
    assert six["title"] is None and six["favicon"] == DEFAULT_FAVICON


@pytest.mark.parametrize("target", ["http://127.0.0.2:{port}/", "http://169.254.169.254/latest/meta-data/"])
def test_redirect_into_a_private_address_is_refused_undialled(engine, crawl_settings, issue, target) -> None:
    private = CountingListener("127.0.0.2")
    site = HttpServer(routes={"/": redirect(target.format(port=private.port)), **NO_ICON})
    with running(site, private):
        meta, _ = crawl(engine, crawl_settings, issue, site.url("/"))
    assert meta == fallback(site.url("/"))
    assert private.accepted == 0


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://127.0.0.1/x"])
def test_redirect_to_other_schemes_is_refused(engine, crawl_settings, issue, target) -> None:
    site = HttpServer(routes={"/": redirect(target), **NO_ICON})
    with running(site):
        meta, _ = crawl(engine, crawl_settings, issue, site.url("/"))
    assert meta == fallback(site.url("/"))


def test_private_favicon_link_refused(engine, crawl_settings, issue) -> None:
    private = CountingListener("127.0.0.2")
    html = f"<title>t</title><link rel=icon href='http://127.0.0.2:{private.port}/x.ico'>".encode()
    site = HttpServer(routes={"/": lambda h: send(h, 200, html, {"Content-Type": "text/html"})})
    with running(site, private):
        meta, _ = crawl(engine, crawl_settings, issue, site.url("/"))
    assert meta["title"] == "t" and meta["favicon"] == DEFAULT_FAVICON and meta["favicon_url"] is None
    assert private.accepted == 0


def test_blocked_host_gets_no_favicon_fallback(engine, crawl_settings, issue) -> None:
    private = CountingListener("127.0.0.2")
    with running(private):
        meta, _ = crawl(engine, crawl_settings, issue, f"http://127.0.0.2:{private.port}/")
    assert meta == fallback(f"http://127.0.0.2:{private.port}/") and private.accepted == 0


def test_redirect_loop_ends_in_the_fallback(engine, crawl_settings, issue) -> None:
    site = HttpServer()
    site.routes.update({"/a": redirect(site.url("/b")), "/b": redirect(site.url("/a"))})
    with running(site):
        meta, took = crawl(engine, crawl_settings, issue, site.url("/a"))
    assert meta["title"] is None and took < 2.5


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (bytes(range(256)) * 64, {"Content-Type": "application/octet-stream"}),
        (b"<title>nul\x00</title>", {"Content-Type": "text/html"}),
        (
            gzip.compress(b"<title>" + b"A" * 50_000_000 + b"</title>"),
            {"Content-Type": "text/html", "Content-Encoding": "gzip"},
        ),
        (b"<title>not a page</title>", {"Content-Type": "application/json"}),
    ],
    ids=["binary", "nul-bytes", "gzip-bomb", "wrong-type"],
)
def test_hostile_pages_give_no_title(engine, crawl_settings, issue, body, headers) -> None:
    site = HttpServer(routes={"/": lambda h: send(h, 200, body, headers)})
    with running(site):
        meta, _ = crawl(engine, crawl_settings, issue, site.url("/"))
    assert meta["title"] is None
    # /favicon.ico answers http.server's default 200 "ok" without a type: Plane's image/x-icon.
    assert meta["favicon"] == "data:image/x-icon;base64,b2s="


def _endless(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><head><title>forever</title>")
    chunk = b"<p>" + b"x" * 65536
    while True:
        conn.sendall(chunk)


def _drip(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
    while True:
        conn.sendall(b"<")
        time.sleep(0.2)


def test_endless_body_read_only_to_the_cap(engine, crawl_settings, issue) -> None:
    server = RawServer(_endless)
    with running(server):
        meta, took = crawl(engine, crawl_settings, issue, server.url("/"))
    assert meta["title"] == "forever", "the title is parsed from the capped prefix"
    assert took < crawl_settings.link_crawler_deadline_s + 0.5


def test_drip_stops_at_the_total_deadline(engine, settings, issue) -> None:
    """The production deadline (5 s): Plane's per-read timeout of 1 s never ends a drip."""
    server = RawServer(_drip)
    open_loopback = replace(settings, link_crawler_allowed_ips=("127.0.0.1/32",))
    with running(server):
        meta, took = crawl(engine, open_loopback, issue, server.url("/"))
    assert meta == fallback(server.url("/"))
    assert took < 5.5


def test_fifty_megabyte_favicon_refused_after_the_cap(engine, crawl_settings, issue) -> None:
    def huge(conn: socket.socket) -> None:
        head = read_request_head(conn)
        if b"GET / " in head:
            body = b"<title>big icon</title><link rel=icon href=/big.ico>"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/x-icon\r\nContent-Length: 52428800\r\n\r\n")
        for _ in range(800):
            conn.sendall(b"\x00" * 65536)

    server = RawServer(huge)
    with running(server):
        meta, took = crawl(engine, crawl_settings, issue, server.url("/"))
    assert meta["title"] == "big icon" and meta["favicon"] == DEFAULT_FAVICON and meta["favicon_url"] is None
    assert took < crawl_settings.link_crawler_deadline_s


def test_missing_link_is_retried_and_changed_link_left_alone(engine, crawl_settings, issue) -> None:
    missing = new_event("plane.link_crawl.v1", {"id": str(uuid.uuid4()), "url": "http://127.0.0.1:9/"})
    site = HttpServer()
    with running(site):
        with engine.begin() as conn:
            link_id = link(conn, issue, site.url("/new"))
        changed = new_event("plane.link_crawl.v1", {"id": str(link_id), "url": site.url("/old")})
        with pytest.raises(EventFailures) as failed:
            run_batch(crawl_settings, [missing, changed])
        assert site.requests == [], "an event for the link's old URL crawls nothing"
    assert list(failed.value.failures) == [missing.id], "only the missing link fails; the other stands"
    assert isinstance(failed.value.failures[missing.id], handler.LinkNotFound)
    assert metadata_of(engine, link_id) == {}


# What 50 parallel crawls of pages near the 1 MiB cap may add to the consumer once it is serving:
# each crawl thread holds one page at a time, at most 3 copies of it (bytes read, text, parse tree).
# The consumer's own size before the pages arrive (about 100 MB here) differs between machines.
GROWTH_BOUND_MB = 50 * 3 * Limits().max_html_bytes / 2**20


def test_fifty_slow_links_crawled_in_parallel_by_one_consumer_under_an_rss_bound(
    engine, settings, issue, tmp_path
) -> None:
    """R10: 50 links to a site whose pages each take 1 s, through Kafka to one consumer process
    (as a pod runs it), under the production deadline (5 s). One at a time, as Plane's worker
    crawls, would take 50 s."""

    def slow(h) -> None:  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        send(h, 200, b"<title>slow</title>" + b"x" * 900_000, {"Content-Type": "text/html"})

    site = HttpServer(routes={"/slow": slow, **NO_ICON})
    with running(site):
        with engine.begin() as conn:
            urls = [site.url(f"/slow?n={n}") for n in range(50)]
            ids = [link(conn, issue, url) for url in urls]
        producer = EventProducer(settings)
        producer.send_many(
            "links",
            [
                (str(i), new_event("plane.link_crawl.v1", {"id": str(i), "url": u}))
                for i, u in zip(ids, urls, strict=True)
            ],
        )
        producer.close()
        with open(tmp_path / "consumer.log", "wb") as log:
            consumer = spawn_consumer(
                "link-crawler", settings, stderr=log, LINK_CRAWLER_ALLOWED_IPS="127.0.0.1/32"
            )
            try:
                proc, peak_mb = psutil.Process(consumer.pid), 0.0

                def all_crawled() -> bool:
                    nonlocal peak_mb
                    peak_mb = max(peak_mb, proc.memory_info().rss / 2**20)
                    return processed(engine, "link-crawler") == 50

                wait_until(lambda: any(r.path.startswith("/slow") for r in site.requests), timeout_s=60)
                serving_mb = proc.memory_info().rss / 2**20
                started = time.monotonic()
                wait_until(all_crawled, timeout_s=60, interval_s=0.05)
                took = time.monotonic() - started
            finally:
                stop_processes([consumer])
    with engine.connect() as conn:
        titles = conn.scalars(
            text("SELECT metadata->>'title' FROM issue_links WHERE issue_id = :i"), {"i": issue.id}
        )
        titles = list(titles)
        assert titles == ["slow"] * 50, (titles.count("slow"), took, peak_mb)
    assert took < 10, f"50 one-second pages took {took:.1f} s"
    grew = peak_mb - serving_mb
    assert grew < GROWTH_BOUND_MB, f"consumer RSS grew {grew:.0f} MB, from {serving_mb:.0f} MB"
    print(f"50 x 1 s pages in {took:.2f} s, consumer RSS {serving_mb:.0f} -> {peak_mb:.0f} MB")
