"""Share links: a distributor's link to a target ``(kind, id)`` of the link target registry
(core/link_targets.py), with UTM parameters and a public short code, which is the mini-program
``scene``; and its QR code (PNG / SVG) of the mini-program path with that scene.

Rules chosen where the brief was silent:
- Refusals come in this order, before any write: the UTM values (422 ``link_invalid``,
  ``details.field`` the parameter: at most 64 of ``[A-Za-z0-9._~-]``, so they go into a path
  unescaped), an unknown target kind (404 ``link_target_not_found``), the target's shape (422
  ``link_invalid``, ``details.field`` ``target_id``: ``shop`` and ``lead_form`` take no id,
  every other kind needs one), then the target itself (404 ``link_target_not_found``: missing,
  or not visible, such as a draft product); a target that exists but is not live now (a product
  off sale, a flash session over) may be linked. Then, under the distributor's row lock: 409
  ``distributor_not_active`` (applied, suspended, rejected), 409 ``link_limit_reached`` (at most
  ``MAX_ACTIVE_LINKS`` active links; the lock makes two concurrent creates count one after the
  other; an exclusive code's hidden link does not count).
- ``title`` is the target's title when the link is made (the share card's text), kept even if
  the target is renamed later.
- Short codes are ``SHORT_CODE_LENGTH`` characters of ``SHORT_CODE_ALPHABET`` (no 0/O, 1/I)
  drawn with ``secrets``: 32^8 ≈ 10^12 codes, so a clash is rare; the unique index decides and a
  clash draws again, in a savepoint, up to ``SHORT_CODE_ATTEMPTS`` times.
- Deactivating is final for the link (there is no reactivation: make a new link); it is
  idempotent, and an exclusive code's hidden link cannot be deactivated here (404). An inactive
  link keeps resolving when opened (the customer lands on its target) but records no click, and
  its QR images answer 404. Other web processes may still record opens of it for up to
  ``referral.selectors.links.CACHE_SECONDS``.
"""

import io
import re
import secrets
from dataclasses import dataclass

import segno
from django.db import IntegrityError, transaction

from core.errors import Conflict, InvalidInput, NotFound
from core.link_targets import LinkTarget, resolve_target, target_needs_id
from referral import locks
from referral.error_codes import DistributorErrorCode, LinkErrorCode
from referral.models import Distributor, ShareLink
from referral.selectors import links as selectors

SHORT_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
SHORT_CODE_LENGTH = 8
SHORT_CODE_ATTEMPTS = 8
MAX_ACTIVE_LINKS = 500
MAX_ID = 2**63 - 1
UTM_MAX_LENGTH = 64
UTM_PATTERN = re.compile(r"[A-Za-z0-9._~-]*")
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content")
QR_ERROR_LEVEL = "m"
QR_SCALE = 8


def short_code_new() -> str:
    return "".join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(SHORT_CODE_LENGTH))


def _check_target(kind: str, ident: int | None) -> LinkTarget:
    try:
        needs_id = target_needs_id(kind)
    except LookupError:
        raise NotFound(
            "There is no such kind of link target.",
            code=LinkErrorCode.LINK_TARGET_NOT_FOUND,
            details={"target_kind": kind},
        ) from None
    if needs_id and ident is None:
        raise InvalidInput(
            f"A `{kind}` link needs a target_id.",
            code=LinkErrorCode.LINK_INVALID,
            details={"field": "target_id"},
        )
    if not needs_id and ident is not None:
        raise InvalidInput(
            f"A `{kind}` link takes no target_id.",
            code=LinkErrorCode.LINK_INVALID,
            details={"field": "target_id"},
        )
    target = resolve_target(kind, ident) if ident is None or 1 <= ident <= MAX_ID else None
    if target is None:
        raise NotFound(
            "The link's target does not exist.",
            code=LinkErrorCode.LINK_TARGET_NOT_FOUND,
            details={"target_kind": kind, "target_id": ident},
        )
    return target


def _check_utm(values: dict[str, str]) -> None:
    for name in UTM_FIELDS:
        value = values[name]
        if len(value) > UTM_MAX_LENGTH or not UTM_PATTERN.fullmatch(value):
            raise InvalidInput(
                f"{name} must be at most {UTM_MAX_LENGTH} of the characters A-Z a-z 0-9 . _ ~ -.",
                code=LinkErrorCode.LINK_INVALID,
                details={"field": name},
            )


def _is_short_code_clash(exc: IntegrityError) -> bool:
    constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) or ""
    return "short_code" in constraint


def _insert_with_fresh_code(**fields: object) -> ShareLink:
    for _ in range(SHORT_CODE_ATTEMPTS):
        try:
            with transaction.atomic():
                return ShareLink.objects.create(short_code=short_code_new(), **fields)
        except IntegrityError as exc:
            if not _is_short_code_clash(exc):
                raise
    raise RuntimeError(f"no free short code after {SHORT_CODE_ATTEMPTS} draws")


def link_create(
    *,
    distributor: Distributor,
    target_kind: str,
    target_id: int | None,
    utm_source: str = "",
    utm_medium: str = "",
    utm_campaign: str = "",
    utm_content: str = "",
) -> ShareLink:
    """A new share link of an active distributor to a target (refusals: module docstring)."""
    utm = {
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "utm_campaign": utm_campaign,
        "utm_content": utm_content,
    }
    _check_utm(utm)
    target = _check_target(target_kind, target_id)
    with transaction.atomic():
        locked = locks.lock_distributor_status(distributor.pk)
        if locked.status != Distributor.Status.ACTIVE:
            raise Conflict(
                "Only an active distributor can make share links.",
                code=DistributorErrorCode.DISTRIBUTOR_NOT_ACTIVE,
                details={"status": locked.status},
            )
        active = ShareLink.objects.filter(
            distributor_id=distributor.pk, is_active=True, is_code_link=False
        ).count()
        if active >= MAX_ACTIVE_LINKS:
            raise Conflict(
                f"A distributor may have at most {MAX_ACTIVE_LINKS} active links; "
                "deactivate some first.",
                code=LinkErrorCode.LINK_LIMIT_REACHED,
                details={"limit": MAX_ACTIVE_LINKS},
            )
        return _insert_with_fresh_code(
            distributor_id=distributor.pk,
            target_kind=target_kind,
            target_id=target_id,
            title=target.title[: ShareLink._meta.get_field("title").max_length],
            **utm,
        )


def link_deactivate(*, distributor: Distributor, link_id: int) -> ShareLink:
    """Deactivate one of the distributor's links (idempotent); anyone else's: 404."""
    with transaction.atomic():
        link = locks.lock_link(selectors.links_of(distributor=distributor).filter(pk=link_id))
        if link is None:
            raise NotFound("This link does not exist.", code=LinkErrorCode.LINK_NOT_FOUND)
        if link.is_active:
            link.is_active = False
            link.save(update_fields=["is_active"])
        # now for this transaction's own reads, and after commit for whatever re-read it meanwhile
        selectors.link_cache_forget(link.short_code)
        transaction.on_commit(lambda: selectors.link_cache_forget(link.short_code))
    return link


@dataclass(frozen=True)
class LinkShare:
    """What the mini-program needs to share a link: the target's page ``path``, the ``scene``
    (the short code), ``share_path`` (path + scene) and the UTM parameters."""

    path: str
    scene: str
    share_path: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_content: str


def link_share(link: ShareLink) -> LinkShare:
    path = selectors.link_target_of(link).path
    return LinkShare(
        path=path,
        scene=link.short_code,
        share_path=selectors.share_path_of(path, link.short_code),
        utm_source=link.utm_source,
        utm_medium=link.utm_medium,
        utm_campaign=link.utm_campaign,
        utm_content=link.utm_content,
    )


def link_qr_svg(link: ShareLink) -> str:
    """An SVG document of the QR code of the link's ``share_path``."""
    out = io.BytesIO()
    segno.make(link_share(link).share_path, error=QR_ERROR_LEVEL).save(
        out, kind="svg", scale=QR_SCALE, title="Share link"
    )
    return out.getvalue().decode()


def link_qr_png(link: ShareLink) -> bytes:
    """A PNG of the QR code of the link's ``share_path``."""
    out = io.BytesIO()
    segno.make(link_share(link).share_path, error=QR_ERROR_LEVEL).save(
        out, kind="png", scale=QR_SCALE
    )
    return out.getvalue()
