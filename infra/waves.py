"""Migration waves planned from the register: every system that is not yet on 政务云, not dual stack or still on a
sector private network, grouped so that lower-risk systems go first and no system moves before the systems it needs.

Order: 等保 level ascending (a wave never mixes levels: level-3/4 systems migrate after the lower levels have proven
the runbook), then department (a department's systems stay together, so its staff handle one wave at a time), then
system id. A wave holds at most ``wave_size`` systems.

Dependencies (``depends_on`` in the register) come first: a system lands in the same wave as the systems it needs or
in a later one. Only dependencies between two systems that are both in the plan constrain anything; a dependency on a
system already done (or decommissioned, or outside the requested departments) imposes nothing, and is listed anyway.
So a level-2 system that needs a level-3 system still to migrate goes after it, in a wave after the level-3 one,
even though level 2 otherwise goes first. Systems that need each other (a cycle: a strongly connected component of
the dependency graph) move together in one wave, even when that exceeds ``wave_size`` (the wave then says
``oversized_for_cycle``); a cycle spanning levels takes the highest level among its members.

Algorithm: Tarjan's strongly connected components, then Kahn's topological order over the condensed graph; among the
components whose dependencies are all placed, the one with the smallest (level, department, id of its first member)
goes next, into the current wave if that wave has its level and room, else into a new wave. The plan is deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inventory.models import System


@dataclass
class Wave:
    number: int
    mlps_level: int
    systems: list[dict[str, Any]] = field(default_factory=list)
    oversized_for_cycle: bool = False
    waiting_on: dict[str, list[str]] = field(default_factory=dict, repr=False)
    """Per system of the wave: its dependencies that still need migration and are not in this wave (in an earlier
    wave, or outside the requested departments). Running the wave before these are done breaks the order."""

    def as_dict(self) -> dict[str, Any]:
        return {"wave": self.number, "mlps_level": self.mlps_level, "systems": self.systems,
                "departments": sorted({s["department"] for s in self.systems}),
                "oversized_for_cycle": self.oversized_for_cycle}


def needed_steps(system: System) -> list[str]:
    """What a system still needs: ``cloud`` (move to 政务云), ``dual_stack``, ``extranet`` (leave the 专网)."""
    steps = []
    if system.hosting != "gov_cloud":
        steps.append("cloud")
    if system.network_stack == "ipv4":
        steps.append("dual_stack")
    if system.network_zone != "egov_extranet":
        steps.append("extranet")
    return steps


def still_to_migrate(system: System) -> bool:
    """True while a system is in service and needs at least one migration step."""
    return system.status != "decommissioned" and bool(needed_steps(system))


def strongly_connected(nodes: Iterable[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each in discovery order; a component's dependencies
    come out before it. ``edges[a]`` lists the nodes ``a`` points to; nodes missing from ``edges`` have none."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(edges.get(root, ())))]
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges.get(target, ()))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def plan_waves(session: Session, wave_size: int = 10, departments: set[str] | None = None) -> list[Wave]:
    """The waves, in order; systems already done (or decommissioned) are not in any."""
    if wave_size < 1:
        raise ValueError(f"wave size must be at least 1, not {wave_size}")
    query = select(System).where(System.status != "decommissioned").options(selectinload(System.hosts)).order_by(
        System.mlps_level, System.department_code, System.id)
    if departments is not None:
        query = query.where(System.department_code.in_(departments))
    planned = {s.id: s for s in session.scalars(query) if needed_steps(s)}
    edges = {i: sorted(d.id for d in s.depends_on if d.id in planned) for i, s in planned.items()}

    order = {i: n for n, i in enumerate(planned)}  # (level, department, id)
    components = [sorted(c, key=order.__getitem__) for c in strongly_connected(planned, edges)]
    component_of = {i: n for n, c in enumerate(components) for i in c}
    levels = [max(planned[i].mlps_level for i in c) for c in components]
    keys = [(levels[n], planned[c[0]].department_code, c[0]) for n, c in enumerate(components)]
    waiting = [{component_of[d] for i in c for d in edges[i]} - {n} for n, c in enumerate(components)]
    dependents: list[set[int]] = [set() for _ in components]
    for n, needs in enumerate(waiting):
        for m in needs:
            dependents[m].add(n)

    ready = [(keys[n], n) for n, needs in enumerate(waiting) if not needs]
    heapq.heapify(ready)
    waves: list[Wave] = []
    while ready:
        _, n = heapq.heappop(ready)
        members = components[n]
        wave = waves[-1] if waves else None
        if wave is None or wave.mlps_level != levels[n] or len(wave.systems) + len(members) > wave_size:
            wave = Wave(len(waves) + 1, levels[n], oversized_for_cycle=len(members) > wave_size)
            waves.append(wave)
        wave.systems.extend(_entry(planned[i]) for i in members)
        for m in sorted(dependents[n]):
            waiting[m].discard(n)
            if not waiting[m]:
                heapq.heappush(ready, (keys[m], m))

    for wave in waves:
        ids = {s["id"] for s in wave.systems}
        for s in wave.systems:
            unfinished = [d.id for d in planned[s["id"]].depends_on if d.id not in ids and still_to_migrate(d)]
            if unfinished:
                wave.waiting_on[s["id"]] = sorted(unfinished)
    return waves


def _entry(system: System) -> dict[str, Any]:
    return {"id": system.id, "name": system.name, "department": system.department_code,
            "mlps_level": system.mlps_level, "steps": needed_steps(system), "hosts": len(system.hosts),
            "depends_on": sorted(d.id for d in system.depends_on)}
