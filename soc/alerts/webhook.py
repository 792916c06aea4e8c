"""Webhook notifications: signed JSON POSTs, retried with backoff until delivered or out of attempts.

Each request carries ``X-Yunshu-Timestamp`` and ``X-Yunshu-Signature: sha256=HEX`` where HEX is the HMAC-SHA256
of ``"{timestamp}.{body}"`` under the webhook's secret; receivers recompute it and reject stale timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from soc.alerts.models import WebhookDelivery

log = logging.getLogger("yunshu.soc.webhook")
MAX_ATTEMPTS = 8


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``timestamp.body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff(attempts: int) -> timedelta:
    """Wait before the next try: 5 s, 10 s, 20 s … capped at one hour."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 3600))


def post(url: str, secret: str, delivery_id: int, body: bytes, timeout: float = 10.0) -> None:
    """One signed POST; raises (OSError, HTTPError for a non-2xx answer, http.client errors …) on failure."""
    timestamp = str(int(time.time()))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "Yunshu-Webhook/1",
        "X-Yunshu-Event": "alert.created", "X-Yunshu-Delivery": str(delivery_id),
        "X-Yunshu-Timestamp": timestamp, "X-Yunshu-Signature": signature(secret, timestamp, body)})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "unexpected status", response.headers, None)


def deliver_due(transaction: Callable[[], AbstractContextManager[Session]], secrets: dict[str, str],
                now: datetime | None = None, limit: int = 50, post_timeout: float = 10.0) -> int:
    """Try every pending delivery that is due; returns how many were delivered.

    The due deliveries are claimed in one short transaction (the attempt counted; rows another deliverer is claiming
    are skipped; the next attempt put off past the time all the POSTs may take, so no other deliverer takes them
    meanwhile and a crash during the POSTs retries them later, not at once), posted with no transaction open (a
    receiver that hangs must not hold the database's write lock from alert recording), and their outcomes written
    in another short transaction, only to rows still as claimed. Any error of a POST, whatever its kind, is a failed
    attempt of that delivery only, retried after the backoff.
    """
    now = now or datetime.now(UTC)
    with transaction() as session:
        due = session.scalars(select(WebhookDelivery).where(WebhookDelivery.status == "pending",
                                                            WebhookDelivery.next_attempt_at <= now)
                              .order_by(WebhookDelivery.id).limit(limit).with_for_update(skip_locked=True)).all()
        lease = timedelta(seconds=post_timeout * len(due) + 60)
        claimed = []
        for item in due:
            item.attempts += 1
            item.next_attempt_at = now + lease
            claimed.append((item.id, item.url, item.payload, item.attempts))
    outcomes: dict[int, str | None] = {}  # delivery id → error (None: delivered)
    for delivery_id, url, payload, _ in claimed:
        secret = secrets.get(url)
        try:
            if secret is None:
                raise ValueError("the webhook is no longer configured")
            post(url, secret, delivery_id, payload.encode("utf-8"), post_timeout)
        except Exception as exc:  # a bad receiver (refused, garbage, TLS, timeout …) is a failed attempt
            outcomes[delivery_id] = f"{type(exc).__name__}: {exc}"[:2000]
        else:
            outcomes[delivery_id] = None
    with transaction() as session:
        for delivery_id, url, _, attempts in claimed:
            error = outcomes[delivery_id]
            if error is None:
                values: dict[str, object] = {"status": "delivered", "delivered_at": now, "last_error": None}
            elif attempts >= MAX_ATTEMPTS or url not in secrets:
                values = {"status": "failed", "last_error": error}
                log.error("webhook %s (delivery %s) failed for good: %s", url, delivery_id, error)
            else:
                values = {"last_error": error, "next_attempt_at": now + backoff(attempts)}
            session.execute(update(WebhookDelivery).where(  # only a row still as this call claimed it
                WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == attempts,
                WebhookDelivery.status == "pending").values(**values))
    return sum(1 for error in outcomes.values() if error is None)
