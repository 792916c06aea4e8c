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
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
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
    """One signed POST; raises OSError/HTTPError on failure (non-2xx included)."""
    timestamp = str(int(time.time()))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "Yunshu-Webhook/1",
        "X-Yunshu-Event": "alert.created", "X-Yunshu-Delivery": str(delivery_id),
        "X-Yunshu-Timestamp": timestamp, "X-Yunshu-Signature": signature(secret, timestamp, body)})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "unexpected status", response.headers, None)


def deliver_due(session: Session, secrets: dict[str, str], now: datetime | None = None, limit: int = 50) -> int:
    """Try every pending delivery that is due; returns how many were delivered."""
    now = now or datetime.now(UTC)
    due = session.scalars(select(WebhookDelivery).where(WebhookDelivery.status == "pending",
                                                        WebhookDelivery.next_attempt_at <= now)
                          .order_by(WebhookDelivery.id).limit(limit)).all()
    delivered = 0
    for item in due:
        secret = secrets.get(item.url)
        item.attempts += 1
        try:
            if secret is None:
                raise ValueError("the webhook is no longer configured")
            post(item.url, secret, item.id, item.payload.encode("utf-8"))
        except (OSError, ValueError) as exc:
            item.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if item.attempts >= MAX_ATTEMPTS or secret is None:
                item.status = "failed"
                log.error("webhook %s for alert %s failed for good: %s", item.url, item.alert_id, item.last_error)
            else:
                item.next_attempt_at = now + backoff(item.attempts)
            continue
        item.status, item.delivered_at, item.last_error = "delivered", now, None
        delivered += 1
    return delivered
