"""Webhooks (issue 17): each card POSTed with its idempotency key, retried with backoff until a 2xx, a
case's cards in order, and a slow or dead receiver holding up nothing else.

The receiver is a real HTTP server on 127.0.0.1 in a thread; the clock that schedules retries is a
``ManualClock``, so no test waits for a backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from engine import Engine
from engine.domain import SHANGHAI
from engine.watch import ManualClock, Watcher, WatchStore, to_micros
from engine.webhooks import IDEMPOTENCY_HEADER, WebhookSender, backoff_seconds
from tests.builders import water
from tests.test_api import INITDB, postgres_server

RULE = "water.no_external.2wd"


class Receiver:
    """Records every POST (card id, idempotency key, status answered); ``answer`` decides the status."""

    def __init__(self, answer: Callable[[dict[str, Any], int], int]) -> None:
        self.posts: list[tuple[str, str, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                card = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                tries = sum(1 for post in receiver.posts if post[0] == card["id"])
                status = answer(card, tries)
                receiver.posts.append((card["id"], self.headers[IDEMPOTENCY_HEADER], status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cards"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def engines() -> tuple[Engine, Engine]:
    return Engine.load(executor="durable"), Engine.load(executor="columnar")


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answer: Callable[[dict[str, Any], int], int] = lambda card, tries: 200) -> Receiver:
        made.append(Receiver(answer))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def at(month: int, day: int, second: int = 0) -> datetime:
    return datetime(2026, month, day, 0, 0, second, tzinfo=SHANGHAI)


def cards_of_two_cases(engines: tuple[Engine, Engine], path: Path | str, clock: ManualClock) -> WatchStore:
    """Case A: yellow on 10-08, red on 10-10 (deadline 10-09); case B: red on 10-10 (deadline 09-30)."""
    store = WatchStore(str(path))
    watcher = Watcher(*engines, store, None, clock)
    open_case = {"connected_at": None, "district": "海曙区"}
    clock.current = at(10, 8, 1)
    watcher.update(water(case_id="A", applied_at="2026-09-30T09:00:00+08:00", **open_case))
    clock.current = at(10, 10, 1)
    watcher.update(water(case_id="B", applied_at="2026-09-28T09:00:00+08:00", **open_case))
    watcher.sweep()
    return store


def test_cards_are_retried_until_a_2xx_and_a_cases_cards_keep_their_order(
    engines: tuple[Engine, Engine], tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    clock = ManualClock(at(10, 8))
    store = cards_of_two_cases(engines, tmp_path / "watch.db", clock)
    # A's yellow card is refused three times (a receiver having a bad minute), everything else accepted.
    receiver = receivers(lambda card, tries: 503 if card["id"].startswith("yellow:") and tries < 3 else 200)
    sender = WebhookSender([receiver.url], store, clock=clock)

    def round_() -> int:
        return anyio.run(sender.deliver_due)

    yellow_a, red_a, red_b = f"yellow:{RULE}:A", f"red:{RULE}:A", f"red:{RULE}:B"
    assert round_() == 1
    # A's red card waits behind its yellow one; B's is not held up by A's.
    assert sorted(receiver.posts) == [(red_b, red_b, 200), (yellow_a, yellow_a, 503)]
    assert round_() == 0 and len(receiver.posts) == 2  # the backoff (2 s) has not passed
    clock.current += timedelta(seconds=backoff_seconds(1))
    assert round_() == 0 and len(receiver.posts) == 3  # refused again; now 4 s
    clock.current += timedelta(seconds=backoff_seconds(1))
    assert round_() == 0 and len(receiver.posts) == 3  # 2 s of 4 have passed
    clock.current += timedelta(seconds=backoff_seconds(2) - backoff_seconds(1))
    assert round_() == 0 and len(receiver.posts) == 4  # refused a third time; now 8 s
    clock.current += timedelta(seconds=backoff_seconds(3))
    assert round_() == 1  # the yellow card at last
    assert round_() == 1  # then, and only then, the red one
    assert [post for post in receiver.posts if post[0].endswith(":A")] == [
        *[(yellow_a, yellow_a, 503)] * 3,
        (yellow_a, yellow_a, 200),
        (red_a, red_a, 200),
    ]
    assert round_() == 0 and len(receiver.posts) == 6  # each card delivered once
    store.close()


def test_a_dead_webhook_does_not_hold_up_a_live_one(
    engines: tuple[Engine, Engine], tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    clock = ManualClock(at(10, 8))
    store = cards_of_two_cases(engines, tmp_path / "watch.db", clock)
    live = receivers()
    dead = receivers()
    dead_url = dead.url
    dead.close()  # nothing listens there any more: connection refused
    sender = WebhookSender([dead_url, live.url], store, clock=clock)
    anyio.run(sender.deliver_due)
    anyio.run(sender.deliver_due)
    assert sorted(post[0] for post in live.posts) == [f"red:{RULE}:A", f"red:{RULE}:B", f"yellow:{RULE}:A"]
    store.close()


def test_a_slow_receiver_holds_up_only_that_cases_later_cards(
    engines: tuple[Engine, Engine], tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    clock = ManualClock(at(10, 8))
    store = cards_of_two_cases(engines, tmp_path / "watch.db", clock)
    release = threading.Event()

    def answer(card: dict[str, Any], tries: int) -> int:
        if card["id"].startswith("yellow:"):
            release.wait(10)  # A's first card takes as long as the test wants
        return 200

    receiver = receivers(answer)
    received_b = threading.Event()

    async def main() -> None:
        sender = WebhookSender([receiver.url], store, clock=clock)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sender.run, 0.02)
            deadline = time.monotonic() + 10
            while not any(post[0] == f"red:{RULE}:B" for post in receiver.posts):
                assert time.monotonic() < deadline, receiver.posts
                await anyio.sleep(0.02)
            received_b.set()
            assert not any(post[0] == f"red:{RULE}:A" for post in receiver.posts)
            release.set()
            while len(receiver.posts) < 3:
                assert time.monotonic() < deadline, receiver.posts
                await anyio.sleep(0.02)
            tasks.cancel_scope.cancel()

    anyio.run(main)
    assert received_b.is_set()
    assert [post[0] for post in receiver.posts if post[0].endswith(":A")] == [
        f"yellow:{RULE}:A",
        f"red:{RULE}:A",
    ]
    store.close()


@pytest.mark.skipif(
    not INITDB, reason="PostgreSQL server binaries not installed (apt-get install postgresql)"
)
def test_the_watch_and_its_deliveries_on_postgresql(
    engines: tuple[Engine, Engine], receivers: Callable[..., Receiver]
) -> None:
    """The same SQL on PostgreSQL: cards raised by an update and a sweep, kept across a reconnect, each
    delivered once, a case's in order."""
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'casecheck[postgres]')")
    with postgres_server() as url:
        clock = ManualClock(at(10, 8))
        cards_of_two_cases(engines, url, clock).close()
        store = WatchStore(url)  # a restart: everything is in the database
        assert [card["id"] for card in store.cards()] == [
            f"yellow:{RULE}:A",
            f"red:{RULE}:B",
            f"red:{RULE}:A",
        ]
        assert store.due(store._db, to_micros(clock.current), 10) == []
        receiver = receivers()
        sender = WebhookSender([receiver.url], store, clock=clock)
        assert anyio.run(sender.deliver_due) == 2
        assert anyio.run(sender.deliver_due) == 1
        assert anyio.run(sender.deliver_due) == 0
        assert [post[0] for post in receiver.posts if post[0].endswith(":A")] == [
            f"yellow:{RULE}:A",
            f"red:{RULE}:A",
        ]
        store.close()
