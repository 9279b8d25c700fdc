"""Record a batch of alerts: incidents, then each group the routes reach, then timers.

Idempotent (a redelivered alert changes nothing); three store round trips per
batch, whatever its size. A new group waits ``group_wait``; an existing one
keeps its next tick. With :attr:`Flush.take`, the groups due at once
(``group_wait`` 0, every alert firing) are planned *before* they are
recorded, as if new: the same script call that records them claims their
notifications if they are new, and they are leased to this replica; the
caller then sends them from memory (``deliver → mark``). A guess about a group
that was not new after all is forgotten (its mutes are not counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from services.notify.group import group_id
from services.notify.route import Route
from services.notify.stages.base import Context, Flush, Group, Stage
from services.notify.stages.dedup import claims_of
from services.notify.store.base import Added, GroupAdd
from shared.models import Alert


@dataclass(slots=True)
class _Adds:
    """A group's updates in one batch: (alert id, member) pairs, flat, in order."""

    route: Route
    labels: str
    members: list[str] = field(default_factory=list)
    alerts: dict[str, tuple[Alert, int]] = field(default_factory=dict)


class Record:
    """Fill :attr:`Flush.count`; with ``take``, also the plan and claim answers of
    the new groups due now, and :attr:`Flush.sending`."""

    def __init__(self, ctx: Context, plan: Stage, tally: Stage) -> None:
        self.ctx = ctx
        self.plan = plan  # mute, then plan
        self.tally = tally

    async def __call__(self, flush: Flush) -> None:
        if not flush.alerts:
            return
        ctx = self.ctx
        now = ctx.clock()
        ttl = ctx.config.nflog_ttl_s
        docs = [a.model_dump_json() for a in flush.alerts]
        seqs = await ctx.store.record_incidents(flush.alerts, docs, now, ttl)
        adds = self._groups(flush, docs, seqs)
        flush.lease = now + ctx.config.lease_s
        ready = [
            Group(
                gid,
                {"route": a.route.id, "labels": a.labels},
                sorted(a.alerts.values(), key=_by_id),
            )
            for gid, a in adds.items()
            if flush.take
            and a.route.group_wait <= 0
            and all(x.status == "firing" for x, _ in a.alerts.values())
        ]
        if ready:
            flush.groups = ready
            await self.plan(flush)
        jobs = {j.gid: j for j in flush.jobs}
        updates = [
            GroupAdd(
                gid,
                a.route.id,
                a.labels,
                a.members,
                claims_of(ctx, flush, jobs[gid]) if gid in jobs else [],
            )
            for gid, a in adds.items()
        ]
        results = await ctx.store.add_to_groups(updates, ttl)
        taken = await self._taken(flush, adds, results, {g.gid for g in ready})
        fresh = {
            gid: flush.lease if gid in taken else now + a.route.group_wait
            for (gid, a), res in zip(adds.items(), results, strict=True)
            if res.new
        }
        known = {
            gid: now + a.route.group_wait
            for (gid, a), res in zip(adds.items(), results, strict=True)
            if not res.new
        }
        await ctx.store.schedule(fresh, known)
        # the first flush of a new group (those taken are leased to this replica)
        ctx.wake(min([t for g, t in fresh.items() if g not in taken], default=None))

    def _groups(self, flush: Flush, docs: list[str], seqs: list[int]) -> dict[str, _Adds]:
        """Each group's updates (a group's go in one script call); counts them."""
        adds: dict[str, _Adds] = {}
        for alert, doc, seq in zip(flush.alerts, docs, seqs, strict=True):
            # the alert's JSON as pydantic wrote it: deterministic for a redelivery
            member = f'{{"alert":{doc},"incident":{seq}}}'
            for route in self.ctx.routing.match(alert.labels):
                gid, glabels = group_id(route, alert.labels)
                a = adds.get(gid)
                if a is None:
                    a = adds[gid] = _Adds(route, json.dumps(glabels))
                a.members += (alert.alert_id, member)
                a.alerts[alert.alert_id] = (alert, seq)  # the last status wins
                flush.count += 1
        return adds

    async def _taken(
        self, flush: Flush, adds: dict[str, _Adds], results: list[Added], ready: set[str]
    ) -> set[str]:
        """Of the groups planned at once, those that were new: keep their plan
        (and count its mutes), their claim answers in :attr:`Flush.answers`."""
        taken = {gid for gid, res in zip(adds, results, strict=True) if res.new and gid in ready}
        if not ready:
            return taken
        answers = {gid: res for gid, res in zip(adds, results, strict=True) if gid in taken}
        for job in flush.jobs:
            if job.gid in answers:
                job.ver = answers[job.gid].ver
        flush.keep_only(taken)
        await self.tally(flush)
        if taken:
            got = {gid: iter(answers[gid].claims) for gid in taken}
            flush.answers = [next(got[job.gid]) for job, _, _ in flush.claims]
            flush.sending = True
        return taken


def _by_id(x: tuple[Alert, int]) -> str:
    return x[0].alert_id
