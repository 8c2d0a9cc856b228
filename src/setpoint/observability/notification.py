"""The test notification: `up` proves that an instance's alerts reach its receivers by sending one
through the host's Alertmanager whenever they change (or the last one failed), and records what
became of it in the instance's state. Checklist point 20 reads that record.

Alertmanager 0.25 counts the notifications it sends by integration (webhook, email, slack,
pagerduty), not by receiver: an instance's test counts as delivered when each of its
integrations sent as many more notifications as it has receivers of that kind, none failed; and
for the host's mailbox, when the message is in it (Alertmanager 0.25 does not read a mail
server's answer to the message itself, so a refused message would count as sent).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import httpx

from setpoint.home import Home
from setpoint.observability import mailbox
from setpoint.observability.monitoring import Alertmanager, monitoring_of, receivers_of
from setpoint.render import Receivers
from setpoint.spec import InstanceSpec

TEST_ALERT = "SetpointTestNotification"
# Alertmanager sends the test at once (its route's group_wait is 1 s), and retries a failed one
# with a growing backoff.
WAIT_S = 45
STATE_KEY = "alerts_test"


@dataclass(frozen=True)
class Outcome:
    receivers: str  # digest of where it went (receivers_digest)
    at: str  # when it was sent, ISO 8601 UTC
    delivered: bool
    detail: str


def receivers_digest(receivers: Receivers) -> str:
    """What identifies an instance's receivers, without their secrets (the digest is kept in the
    instance's state)."""
    public = {"webhooks": list(receivers.webhooks),
              "emails": [[e.to, e.smarthost, e.smtp.username or ""] for e in receivers.emails],
              "slack": [channel or "" for _, channel in receivers.slack], "pagerduty": len(receivers.pagerduty)}
    return hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()[:16]


def integrations(receivers: Receivers) -> dict[str, int]:
    """How many receivers of each Alertmanager integration."""
    found = {"webhook": len(receivers.webhooks), "email": len(receivers.emails), "slack": len(receivers.slack),
             "pagerduty": len(receivers.pagerduty)}
    return {integration: count for integration, count in found.items() if count}


def needed(home: Home, spec: InstanceSpec, state: dict) -> Receivers | None:
    """The instance's receivers when they have not had a delivered test notification yet."""
    receivers = receivers_of(home, spec)
    last = state.get(STATE_KEY) or {}
    return None if last.get("receivers") == receivers_digest(receivers) and last.get("delivered") else receivers


def send(home: Home, spec: InstanceSpec, receivers: Receivers, timeout: float = WAIT_S,
         configured_at: float | None = None) -> Outcome:
    """Raise a test alert about the instance in the host's Alertmanager, wait until it is
    delivered to every receiver (or fails, or `timeout`), then resolve it. `configured_at`: when
    Alertmanager was told to read the configuration naming these receivers (it reads it on its
    own time: a test raised before would be routed by the old one, and lost in the reload)."""
    manager = Alertmanager(monitoring_of(home))
    wanted = integrations(receivers)
    labels = {"alertname": TEST_ALERT, "setpoint_instance": spec.name, "severity": "info"}
    summary = f"a test notification from setpoint up: {spec.name}'s alerts reach this receiver; nothing is wrong"
    deadline, failed, sent_at = time.monotonic() + timeout, {}, datetime.now(timezone.utc)
    try:
        while configured_at is not None and manager.last_reload() < configured_at:
            if time.monotonic() > deadline:
                return _outcome(receivers, sent_at, False,
                                f"the host's Alertmanager did not read its new configuration within {timeout:.0f} s: "
                                f"see {home.monitoring_dir}/alertmanager.log")
            time.sleep(0.2)
        sent_at = datetime.now(timezone.utc)
        before = manager.notifications()
        manager.raise_alert(labels, summary, (sent_at + timedelta(minutes=10)).isoformat())
        try:
            while time.monotonic() < deadline:
                time.sleep(1)
                now = manager.notifications()
                delta = {k: tuple(a - b for a, b in zip(now.get(k, (0, 0)), before.get(k, (0, 0)))) for k in wanted}
                failed = {k: int(d[1]) for k, d in delta.items() if d[1] > 0}
                if all(d[0] - d[1] >= wanted[k] for k, d in delta.items()) and in_mailbox(home, spec.name, receivers, sent_at):
                    seconds = (datetime.now(timezone.utc) - sent_at).seconds
                    return _outcome(receivers, sent_at, True, f"delivered in {seconds} s")
        finally:
            manager.raise_alert(labels, summary, datetime.now(timezone.utc).isoformat())  # resolved
    except httpx.HTTPError as exc:
        return _outcome(receivers, sent_at, False, f"the host's Alertmanager did not answer ({type(exc).__name__}): "
                                                   f"see {home.monitoring_dir}/alertmanager.log")
    why = (f"Alertmanager's attempts by {', '.join(failed)} failed" if failed
           else f"Alertmanager sent nothing within {timeout:.0f} s")
    return _outcome(receivers, sent_at, False, f"{why}: see {home.monitoring_dir}/alertmanager.log")


def in_mailbox(home: Home, name: str, receivers: Receivers, sent_at: datetime) -> bool:
    """Whether the test sent at `sent_at` is in the host's mailbox, if it was sent there."""
    if not any(mailbox.is_mailbox_address(email.to) for email in receivers.emails):
        return True
    since = sent_at - timedelta(seconds=1)  # the mailbox's clock reads whole seconds
    return any(TEST_ALERT in m.subject and m.received >= since
               for m in mailbox.messages(home.monitoring_dir / "mailbox", name))


def _outcome(receivers: Receivers, sent_at: datetime, delivered: bool, detail: str) -> Outcome:
    return Outcome(receivers_digest(receivers), sent_at.isoformat(timespec="seconds"), delivered, detail)


def record(state: dict, outcome: Outcome) -> None:
    state[STATE_KEY] = asdict(outcome)


def last(state: dict) -> Outcome | None:
    found = state.get(STATE_KEY)
    return Outcome(**found) if found else None
