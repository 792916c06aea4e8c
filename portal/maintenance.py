"""Periodic maintenance of the running control plane (``yunshu up``): ticket approval escalation, expiry reminders
and reclamation (see :func:`portal.tickets.service.maintain`), run off the event loop every few minutes."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from core.runtime import Runtime
from portal.tickets.service import maintain

log = logging.getLogger("yunshu.maintenance")
INTERVAL_SECONDS = 300.0


async def maintenance_loop(rt: Runtime, interval: float = INTERVAL_SECONDS) -> None:
    """Run the ticket maintenance now and then every ``interval`` seconds until cancelled; failures are logged and
    retried at the next round (nothing is lost: every step is a conditional, audited update)."""
    while True:
        try:
            done = await run_in_threadpool(maintain, rt)
            if any(done.values()):
                log.info("ticket maintenance: %s", {k: len(v) for k, v in done.items() if v})
        except Exception:  # keep the service up; the next round retries
            log.exception("ticket maintenance failed")
        await asyncio.sleep(interval)
