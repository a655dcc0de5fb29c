"""Keeping the fleet's picture current: health polls on a timer, and late deliveries.

What ``edgeloop devices watch`` runs and what the desktop app runs in the background while it
is open: each round polls every enrolled device's health (which also brings its hourly drift
statistics in) and hands a running rollout's release to devices that were offline when their
stage ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.core.progress import CancelToken
from app.core.roles import Actor
from app.fleet.context import FleetContext
from app.fleet.deploy import DeployOutcome, deliver_pending
from app.fleet.health import HealthReport, poll_fleet
from app.fleet.summaries import running_rollouts


@dataclass(frozen=True)
class WatchRound:
    """What one round saw and delivered."""

    at: datetime
    reports: list[HealthReport]
    deliveries: list[tuple[int, DeployOutcome]]  # (rollout id, outcome)


def watch_fleet(ctx: FleetContext, actor: Actor, *, interval_s: float, cancel: CancelToken,
                rounds: int = 0, report: Callable[[WatchRound], None] = lambda _: None) -> int:
    """Poll and deliver every ``interval_s`` until cancelled (or ``rounds`` rounds, if not
    0); the number of rounds done. One device's trouble is its own report, never the end."""
    done = 0
    while not cancel.cancelled:
        reports = poll_fleet(ctx)
        deliveries = [(rollout_id, outcome) for rollout_id in running_rollouts(ctx.db)
                      for outcome in deliver_pending(ctx, actor, rollout_id, cancel=cancel)]
        report(WatchRound(ctx.clock(), reports, deliveries))
        done += 1
        if (rounds and done >= rounds) or cancel.wait(interval_s):
            break
    return done
