"""Which node may render which shot, with which Blender; and, when no node may, why.

A shot's needs (required tags, a device, a Blender version range or the version its
file was saved with, scripts) are checked against what a node offers (its tags, its
devices, its Blenders). The claim asks `blender_for`; the shot's `waiting` reason and
notices come from `explain`, over the nodes connected now.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from brender_protocol import requirements as rules
from brender_protocol.requirements import VersionRange


@dataclass(frozen=True)
class Offer:
    """What a node brings to a claim; equal offers get equal answers."""
    tags: frozenset[str]
    gpu: bool
    blenders: tuple[str, ...]
    allow_scripts: bool


_offers: dict[Offer, Offer] = {}


def offer_of(node: dict) -> Offer:
    """The node's offer; nodes offering the same share one object (a farm of thousands
    has a handful of kinds, and the waiting reasons group its nodes by them)."""
    blenders = tuple(node.get("blenders") or
                     ([node["blender_version"]] if node.get("blender_version") else []))
    offer = Offer(frozenset(node.get("tags") or ()), rules.has_gpu(node.get("devices") or []),
                  blenders, bool(node.get("allow_scripts")))
    if len(_offers) > 10_000:
        _offers.clear()
    return _offers.setdefault(offer, offer)


@dataclass(frozen=True)
class Needs:
    requires: frozenset[str]
    prefers: frozenset[str]
    device: str | None
    blender: VersionRange | None
    saved_with: tuple[int, ...] | None
    allow_scripts: bool

    def tags_ok(self, offer: Offer) -> bool:
        return self.requires <= offer.tags

    def device_ok(self, offer: Offer) -> bool:
        return self.device != "gpu" or offer.gpu

    def preference(self, offer: Offer) -> int:
        return len(self.prefers & offer.tags)


_needs_cache: dict[tuple[str, int], Needs] = {}


def needs_of(shot: Any) -> Needs:
    """A shot row's needs (cached: the claim asks for every shot in every claim)."""
    text, scripts = shot["requirements"] or "{}", int(bool(shot["allow_scripts"]))
    needs = _needs_cache.get((text, scripts))
    if needs is None:
        if len(_needs_cache) > 10_000:
            _needs_cache.clear()
        r = json.loads(text)
        needs = Needs(frozenset(r.get("requires_tags") or ()),
                      frozenset(r.get("prefers_tags") or ()), r.get("device"),
                      VersionRange.parse(r["blender"]) if r.get("blender") else None,
                      rules.parse_version(r["blender_saved_with"])[:2]
                      if r.get("blender_saved_with") else None, bool(scripts))
        _needs_cache[(text, scripts)] = needs
    return needs


def needs_of_view(shot: dict) -> Needs:
    """`needs_of` for a shot as the API shows it (its requirements as fields)."""
    keys = ("requires_tags", "prefers_tags", "device", "blender", "blender_saved_with")
    wanted = {k: shot[k] for k in keys if shot.get(k)}
    return needs_of({"requirements": json.dumps(wanted),
                     "allow_scripts": shot.get("allow_scripts")})


def _newest(versions: Iterable[str]) -> str | None:
    best: tuple[tuple[int, ...], str] | None = None
    for v in versions:
        try:
            key = rules.parse_version(v)
        except ValueError:
            continue
        if best is None or key > best[0]:
            best = (key, v)
    return best[1] if best else None


def _series(version: str) -> tuple[int, ...] | None:
    try:
        return rules.parse_version(version)[:2]
    except ValueError:
        return None


def farm_series(offers: Iterable[Offer]) -> frozenset[tuple[int, ...]]:
    """The major.minor series of Blender that the given nodes offer between them."""
    out = set()
    for offer in offers:
        for v in offer.blenders:
            s = _series(v)
            if s is not None:
                out.add(s)
    return frozenset(out)


def target_series(needs: Needs, farm: frozenset[tuple[int, ...]]) -> tuple[int, ...] | None:
    """The series a shot with no range renders with: its file's, if some node has it,
    else the farm's newest, if that is not older than the file. None: no node can."""
    if needs.saved_with is None:
        return None
    if needs.saved_with in farm:
        return needs.saved_with
    newest = max(farm, default=None)
    return newest if newest is not None and newest > needs.saved_with else None


def blender_for(needs: Needs, offer: Offer, farm: frozenset[tuple[int, ...]]) -> str | None:
    """The version of the node's Blenders to render the shot with ("": the one it
    has, unnamed); None: the node cannot render it (tags, device, scripts, version)."""
    if not needs.tags_ok(offer) or not needs.device_ok(offer) or \
            (needs.allow_scripts and not offer.allow_scripts):
        return None
    if not offer.blenders:  # a node that did not say: its one Blender, if nothing is asked
        return "" if needs.blender is None and needs.saved_with is None else None
    if needs.blender is not None:
        return _newest(v for v in offer.blenders if needs.blender.contains(v))
    if needs.saved_with is None:
        return offer.blenders[0]
    target = target_series(needs, farm)
    if target is None:
        return None
    return _newest(v for v in offer.blenders if _series(v) == target)


@dataclass
class NodeState:
    offer: Offer
    enabled: bool
    awake: bool


def explain(needs: Needs, nodes: list[NodeState], farm: frozenset[tuple[int, ...]],
            max_nodes: int | None, rendering: int) -> tuple[str | None, list[str]]:
    """Why a shot with queued work is not taken (None: some node can take it when it
    is free), and notices about how it renders."""
    notices = []
    target = target_series(needs, farm) if needs.blender is None else None
    if target is not None and needs.saved_with is not None and target != needs.saved_with:
        notices.append(f"no node has Blender {rules.version_text(needs.saved_with)} (the "
                       f"file's version); rendering with {rules.version_text(target)}")
    if not nodes:
        return "no node is connected", notices
    left = [n for n in nodes if needs.tags_ok(n.offer)]
    if not left:
        missing = sorted(t for t in needs.requires if not any(t in n.offer.tags for n in nodes))
        if missing:
            return ("no node has tag " if len(missing) == 1 else "no node has tags ") \
                + ", ".join(missing), notices
        return "no node has all of the tags " + ", ".join(sorted(needs.requires)), notices
    with_tags = " with tag" + ("s " if len(needs.requires) > 1 else " ") + \
        ", ".join(sorted(needs.requires)) if needs.requires else ""
    if needs.device == "gpu":
        left = [n for n in left if n.offer.gpu]
        if not left:
            return f"no node{with_tags} has a GPU", notices
    if needs.allow_scripts:
        left = [n for n in left if n.offer.allow_scripts]
        if not left:
            return "no node that could take it allows scripts (brender-node " \
                   "--allow-scripts)", notices
    matched = [n for n in left if blender_for(needs, n.offer, farm) is not None]
    if not matched:
        if needs.blender is not None:
            return f"no node has Blender {needs.blender}", notices
        newest = _newest(v for n in nodes for v in n.offer.blenders)
        saved = rules.version_text(needs.saved_with or ())
        return f"saved with Blender {saved}; the newest node has {newest or 'none'}", notices
    if not any(n.enabled for n in matched):
        return "every node that can take it is disabled", notices
    if not any(n.enabled and n.awake for n in matched):
        return "every node that can take it is asleep", notices
    if max_nodes is not None and rendering >= max_nodes:
        return f"at its limit of {max_nodes} node{'s' if max_nodes != 1 else ''}", notices
    return None, notices
