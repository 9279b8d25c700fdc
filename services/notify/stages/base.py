"""What the stages share: the :class:`Context`, the :class:`Flush` they fill in
turn, the :class:`Stage` protocol and the :class:`Pipeline` that chains stages.

A flush batch goes through ``load → mute → plan → tally → dedup → deliver →
mark`` (see :mod:`services.notify.handler`); a batch of alerts through
``record`` (which plans, at once, the new groups due now) and then ``deliver →
mark`` for those. Each stage reads what the earlier ones wrote in the
:class:`Flush` and adds its own part; a stage that raises stops the pipeline
(the groups' leases bring them back).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.notify.cells import Cell, Cells
from services.notify.channels.base import Notification
from services.notify.delivery import DeliveryConfig
from services.notify.group import Member
from services.notify.metrics import NotifyMetrics
from services.notify.route import Route, Routing
from services.notify.silence import Silence
from services.notify.store.base import NotifyStore
from shared.metrics import children
from shared.models import Alert

log = logging.getLogger("vigie.notify")

Clock = Callable[[], float]
Sink = Callable[[dict[str, Any]], Awaitable[None]]
BatchSink = Callable[[list[dict[str, Any]]], Awaitable[None]]
#: A group's alerts with their incident numbers, sorted by alert id.
Alerts = list[tuple[Alert, int]]


def _no_wake(_first: float | None) -> None:
    """Default of :attr:`Context.wake` (no run loop to wake)."""


@dataclass
class Context:
    """The stages' dependencies, and the routing and cells in force (hot reload)."""

    store: NotifyStore
    routing: Routing
    cells: Cells
    config: DeliveryConfig
    metrics: NotifyMetrics
    audit: Sink
    dlq: Sink
    clock: Clock
    #: Writes many audit records at once (else :attr:`audit` is called for each).
    audit_many: BatchSink | None = None
    #: Timers were written, the earliest at the argument (see :meth:`Flusher.timers_set`).
    wake: Callable[[float | None], None] = _no_wake
    routes: dict[str, Route] = field(init=False)
    _children: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.routes = self.routing.by_id()

    def apply(self, routing: Routing, cells: Cells) -> None:
        self.routing, self.cells = routing, cells
        self.routes = routing.by_id()

    def counter(self, metric: Any, *labels: str) -> Any:
        """A labelled child of ``metric``, looked up once (``.labels()`` is not free)."""
        lookup = self._children.get(id(metric))
        if lookup is None:
            lookup = self._children[id(metric)] = children(metric)
        return lookup(*labels)

    async def emit(self, records: list[dict[str, Any]]) -> None:
        """Write audit records: all at once when the sink takes batches. A failure
        is logged, not raised (the deliveries they describe are done and marked)."""
        if not records:
            return
        try:
            if self.audit_many is not None:
                await self.audit_many(records)
            else:
                for r in records:
                    await self.audit(r)
        except Exception:
            log.exception("audit records not written", extra={"records": len(records)})


@dataclass(slots=True)
class Group:
    """A leased group, read from the store (or just recorded)."""

    gid: str
    meta: dict[str, str]
    alerts: Alerts


@dataclass(slots=True)
class Job:
    """One group's notification, being flushed."""

    gid: str
    route: Route
    cell: Cell
    n: Notification
    state: str
    alerts: Alerts
    members: list[Member]
    ver: str


@dataclass(slots=True)
class Flush:
    """A flush batch, as the stages fill it."""

    #: the groups' lease end (their schedule score while this flush runs)
    lease: float
    gids: list[str] = field(default_factory=list)
    #: record's input; with ``take``, the new groups due now are flushed at once
    alerts: list[Alert] = field(default_factory=list)
    take: bool = False
    #: group updates recorded; whether record left something to send
    count: int = 0
    sending: bool = False
    groups: list[Group] = field(default_factory=list)
    firing: dict[str, dict[str, str]] = field(default_factory=dict)
    silences: dict[str, list[Silence]] = field(default_factory=dict)
    #: the plan's time
    now: float = 0.0
    jobs: list[Job] = field(default_factory=list)
    reschedule: dict[str, float] = field(default_factory=dict)
    #: (group, version or None to delete whatever it holds, later time if kept)
    drops: list[tuple[str, str | None, float]] = field(default_factory=list)
    #: (job, channel, notification log key), one per job and channel
    claims: list[tuple[Job, Any, str]] = field(default_factory=list)
    #: each claim's answer, then each delivery's outcome
    answers: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    #: (group, reason) of each alert muted, counted once the plan is kept
    mutes: list[tuple[str, str]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def keep_only(self, gids: set[str]) -> None:
        """Forget what was decided for groups not in ``gids`` (not new after all)."""
        self.jobs = [j for j in self.jobs if j.gid in gids]
        self.claims = [c for c in self.claims if c[0].gid in gids]
        self.reschedule = {g: t for g, t in self.reschedule.items() if g in gids}
        self.drops = [d for d in self.drops if d[0] in gids]
        self.mutes = [m for m in self.mutes if m[0] in gids]


class Stage(Protocol):
    """One step of a flush: reads and fills ``flush``; raises to stop the pipeline."""

    async def __call__(self, flush: Flush) -> None: ...


class Pipeline:
    """Stages run in order on one :class:`Flush`."""

    def __init__(self, *stages: Stage) -> None:
        self.stages = stages

    async def __call__(self, flush: Flush) -> None:
        for stage in self.stages:
            await stage(flush)


class Tally:
    """Count the mutes of a plan that is kept (not of a guess thrown away)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, flush: Flush) -> None:
        for _, reason in flush.mutes:
            self.ctx.counter(self.ctx.metrics.muted, reason).inc()
