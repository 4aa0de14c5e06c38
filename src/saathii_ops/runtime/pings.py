"""Monitoring pings in the style of healthchecks.io (SPEC §9).

With a ping URL configured, a real run that will run (it holds the job's lock and
the job is not paused) sends `<url>/start`, then `<url>` when it succeeds (exit
0), `<url>/1` when it committed but some rows failed (exit 1: healthchecks.io's
exit-status form, which marks the check down), `<url>/fail` when it failed or was
interrupted. A run that was skipped (lock taken, job paused) sends only
`<url>/log`: an event in the check's log that changes neither its state nor its
grace timer. Each ping carries `?rid=<run id>` and a JSON body (job, outcome,
exit code, duration, counts). docs/operations.md has the table.
Pings go out on background threads with a short timeout: a monitor that is
down or slow never fails the job and delays it by at most PING_TIMEOUT.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from saathii_ops.db.tables import RunOutcome
from saathii_ops.settings import Settings

log = logging.getLogger(__name__)

PING_TIMEOUT = 2.0
START, SUCCESS, FAIL, LOG = "/start", "", "/fail", "/log"


def result_endpoint(outcome: RunOutcome, exit_code: int) -> str:
    """The ping that ends a run: its outcome, or its exit code when it committed with
    rows it could not process (never plain success for a run that exits 1)."""
    if outcome == RunOutcome.SKIPPED:
        return LOG
    if outcome == RunOutcome.FAILED:
        return FAIL
    return SUCCESS if exit_code == 0 else f"/{exit_code}"


def ping_url(settings: Settings, job_name: str) -> str | None:
    """The job's own URL if configured, else the base URL with the job name appended."""
    if job_name in settings.ping_urls:
        return settings.ping_urls[job_name]
    if settings.ping_url:
        return f"{settings.ping_url.rstrip('/')}/{job_name}"
    return None


class Pinger:
    def __init__(self, url: str | None, run_id: str) -> None:
        self.url = url.rstrip("/") if url else None
        self.run_id = run_id  # the runner's
        self._threads: list[threading.Thread] = []

    def send(self, endpoint: str, body: dict[str, Any]) -> None:
        """POST to `<url><endpoint>` (START, SUCCESS, FAIL, LOG, or `/<exit code>`)."""
        if self.url is None:
            return
        target = f"{self.url}{endpoint}?rid={self.run_id}"
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
