"""Riding out an unreachable chain or store: the bounded backoff the agents and the round loop share."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class OutageClock:
    """The bounded backoff through an unreachable chain or store: pauses from ``first_pause_s``, doubling up to
    ``max_pause_s``; an outage longer than ``max_outage_s`` seconds is raised."""

    def __init__(self, first_pause_s: float, max_outage_s: float, max_pause_s: float = 10.0) -> None:
        self.first_pause_s, self.max_outage_s, self.max_pause_s = first_pause_s, max_outage_s, max_pause_s
        self.since: float | None = None
        self.failures = 0

    def failed(self, err: Exception) -> None:
        """Pause before the next try, or raise ``err`` once the outage lasted longer than allowed."""
        now = time.monotonic()
        self.since = now if self.since is None else self.since
        if now - self.since > self.max_outage_s:
            raise err
        delay = min(self.first_pause_s * 2 ** self.failures, self.max_pause_s)
        self.failures += 1
        log.warning("%s; retrying in %.1f s (unreachable for %.0f s)", err, delay, now - self.since)
        time.sleep(delay)

    def recovered(self) -> None:
        """The chain and store answered: the next outage starts afresh."""
        if self.since is not None:
            log.info("reachable again after %.1f s", time.monotonic() - self.since)
        self.since, self.failures = None, 0
