"""Monitoring pings in the style of healthchecks.io (SPEC §9).

With a ping URL configured, a real run sends `<url>/start` when it begins, then
`<url>` on success, `<url>/fail` on failure, or `<url>/log` when it was skipped
— each with `?rid=<run id>` and a JSON body (job, outcome, duration, counts).
Pings go out on background threads with a short timeout: a monitor that is
down or slow never fails the job and delays it by at most PING_TIMEOUT.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

from saathii_ops.settings import Settings

log = logging.getLogger(__name__)

PING_TIMEOUT = 2.0
ENDPOINTS = {"start": "/start", "ok": "", "failed": "/fail", "skipped": "/log"}


def ping_url(settings: Settings, job_name: str) -> str | None:
    """The job's own URL if configured, else the base URL with the job name appended."""
    if job_name in settings.ping_urls:
        return settings.ping_urls[job_name]
    if settings.ping_url:
        return f"{settings.ping_url.rstrip('/')}/{job_name}"
    return None


class Pinger:
    def __init__(self, url: str | None) -> None:
        self.url = url.rstrip("/") if url else None
        self.run_id = uuid.uuid4().hex
        self._threads: list[threading.Thread] = []

    def send(self, event: str, body: dict[str, Any]) -> None:
        if self.url is None:
            return
        target = f"{self.url}{ENDPOINTS[event]}?rid={self.run_id}"
        payload = json.dumps(dict(body, run_id=self.run_id), default=str).encode()
        thread = threading.Thread(target=_post, args=(target, payload), daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        """Give outstanding pings until PING_TIMEOUT in all to finish; never longer."""
        deadline = time.monotonic() + PING_TIMEOUT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _post(url: str, payload: bytes) -> None:
    import urllib.request  # only a run with a ping URL pays for http.client and ssl

    request = urllib.request.Request(
        url, data=payload, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=PING_TIMEOUT) as response:
            response.read()
    except Exception as exc:  # a monitor being down is reported, never raised
        log.warning("monitoring ping to %s failed: %s", url.split("?")[0], exc)
