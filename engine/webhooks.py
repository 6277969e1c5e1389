"""Webhooks: each watch card POSTed as JSON to the URLs given to ``casecheck serve --webhook``.

A card is sent with an ``Idempotency-Key`` header (its stable id), retried with exponential backoff until
the receiver answers 2xx, and a case's cards go out in the order raised. Deliveries are rows of the watch
store, so a restart resumes them and two workers never send the same card at once (a lease). Sending runs
in the background on its own HTTP client with a timeout: a slow or dead receiver delays neither checks nor
the cards of other cases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC

import anyio
import anyio.to_thread
import httpx
import orjson

from engine.watch import Clock, SystemClock, WatchStore, to_micros

__all__ = ["IDEMPOTENCY_HEADER", "WebhookSender", "backoff_seconds"]

log = logging.getLogger("casecheck.webhooks")
IDEMPOTENCY_HEADER = "Idempotency-Key"
POLL_SECONDS = 1.0
SEND_TIMEOUT_SECONDS = 10.0
# A claimed card is someone's for this long: longer than one send with its timeout.
LEASE_SECONDS = 60
BATCH = 100
MAX_BACKOFF_SECONDS = 600


def backoff_seconds(attempts: int) -> int:
    """Seconds to wait after the ``attempts``-th failure: 2, 4, 8, … up to ten minutes."""
    return min(2**attempts, MAX_BACKOFF_SECONDS)


class WebhookSender:
    """Delivers the watch's cards to the webhooks; ``deliver_due`` is one round, the loop calls it."""

    def __init__(
        self,
        urls: Sequence[str],
        store: WatchStore,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.urls = list(urls)
        self.store = store
        self.client = client or httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS)
        self.clock: Clock = clock or SystemClock()

    async def deliver_due(self) -> int:
        """One round: send every card due now to every webhook, concurrently, and wait for the answers;
        how many were delivered."""
        results: list[bool] = []

        async def send(url: str, card: dict[str, object]) -> None:
            results.append(await self._send(url, card))

        async with anyio.create_task_group() as tasks:
            for url, card in await self._claim():
                tasks.start_soon(send, url, card)
        return sum(results)

    async def run(self, every: float = POLL_SECONDS) -> None:
        """Claim what is due every ``every`` seconds and send it without waiting for earlier sends: a
        receiver that is slow for one card holds up only the later cards of that card's case."""
        try:
            async with anyio.create_task_group() as tasks:
                while True:
                    try:
                        for url, card in await self._claim():
                            tasks.start_soon(self._send, url, card)
                    except Exception:
                        log.exception("webhook delivery round failed; retrying in %s s", every)
                    await anyio.sleep(every)
        finally:
            with anyio.CancelScope(shield=True):
                await self.client.aclose()

    async def _claim(self) -> list[tuple[str, dict[str, object]]]:
        claimed = []
        for url in self.urls:
            now = to_micros(self.clock.now())
            cards = await anyio.to_thread.run_sync(
                self.store.claim_deliveries, url, now, LEASE_SECONDS * 1_000_000, BATCH
            )
            claimed += [(url, card) for card in cards]
        return claimed

    async def _send(self, url: str, card: dict[str, object]) -> bool:
        """POST one card; on a 2xx it is delivered, else it is tried again after its backoff."""
        attempts = int(card.pop("attempts"))  # type: ignore[call-overload]
        seq = int(card["seq"])  # type: ignore[call-overload]
        try:
            answer = await self.client.post(
                url,
                content=orjson.dumps(card),
                headers={"Content-Type": "application/json", IDEMPOTENCY_HEADER: str(card["id"])},
            )
            error = None if answer.is_success else f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = self.clock.now()
        if error is None:
            await anyio.to_thread.run_sync(self.store.delivered, url, seq, now.astimezone(UTC).isoformat())
            return True
        wait = backoff_seconds(attempts + 1)
        log.warning("webhook %s: card %s not delivered (%s); retrying in %s s", url, card["id"], error, wait)
        retry_at = to_micros(now) + wait * 1_000_000
        await anyio.to_thread.run_sync(self.store.retry_later, url, seq, retry_at, error)
        return False

    async def aclose(self) -> None:
        await self.client.aclose()
