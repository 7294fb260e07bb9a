"""Link targets: what a share link may point at, as ``(kind, id)`` (INTERFACES.md, "Link
targets"). The app that owns a kind registers a resolver here in its ``AppConfig.ready``; referral
stores the pair and asks the registry, so it imports no app that owns a target (core imports no
app either).

A resolver takes the target's id (``None`` for kinds without one, such as ``shop``) and answers a
``LinkTarget`` (the mini-program page path, a title, whether it is live now), or ``None`` when
there is no such target. Kinds registered with ``needs_id=False`` take no id; the others need
one."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkTarget:
    kind: str
    id: int | None
    path: str  # the mini-program page, with its own query (e.g. "pages/product/detail?id=12")
    title: str
    live: bool


Resolver = Callable[[int | None], LinkTarget | None]


@dataclass(frozen=True)
class _Kind:
    resolver: Resolver
    needs_id: bool


_kinds: dict[str, _Kind] = {}


def register_target(kind: str, resolver: Resolver, *, needs_id: bool = True) -> None:
    _kinds[kind] = _Kind(resolver=resolver, needs_id=needs_id)


def registered_target_kinds() -> list[str]:
    return sorted(_kinds)


def target_needs_id(kind: str) -> bool:
    known = _kinds.get(kind)
    if known is None:
        raise LookupError(kind)
    return known.needs_id


def resolve_target(kind: str, ident: int | None) -> LinkTarget | None:
    """The target, or ``None`` for an unknown kind, a missing or unexpected id, or no such
    object."""
    known = _kinds.get(kind)
    if known is None or (ident is None) == known.needs_id:
        return None
    return known.resolver(ident)
