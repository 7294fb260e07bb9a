"""Reads of fraud flags: what holds commissions (``open_flags``, for the attribution service and
incentives) and the operators' list and detail."""

from django.db.models import F, Q, QuerySet

from core.errors import NotFound
from referral.error_codes import FraudErrorCode
from referral.models import FraudFlag


def open_flags(
    *, distributor_id: int | None = None, attribution_id: int | None = None
) -> QuerySet[FraudFlag]:
    """Open flags, oldest first:

    - ``attribution_id`` and ``distributor_id`` (its level-1 distributor): what holds that
      attribution's commissions, the flags on the attribution itself and the distributor's
      distributor-wide ones (click spam, device cluster, refund rate: no attribution). Another
      attribution's flag of the same distributor holds only that attribution.
    - ``distributor_id`` alone: every open flag of the distributor (whether under suspicion).
    - ``attribution_id`` alone: the flags on that attribution.
    - neither: every open flag."""
    flags = FraudFlag.objects.filter(status=FraudFlag.Status.OPEN)
    if attribution_id is not None and distributor_id is not None:
        flags = flags.filter(
            Q(attribution_id=attribution_id)
            | Q(distributor_id=distributor_id, attribution__isnull=True)
        )
    elif attribution_id is not None:
        flags = flags.filter(attribution_id=attribution_id)
    elif distributor_id is not None:
        flags = flags.filter(distributor_id=distributor_id)
    return flags.order_by("id")


def flags_for_staff(
    *, status: str | None = None, kind: str | None = None, distributor_id: int | None = None
) -> QuerySet[FraudFlag]:
    """Flags newest first, filtered by status, kind and distributor, with the distributor's
    display name and the attributed order's id."""
    flags = FraudFlag.objects.annotate(
        distributor_name=F("distributor__display_name"), order_id=F("attribution__order_id")
    )
    if status:
        flags = flags.filter(status=status)
    if kind:
        flags = flags.filter(kind=kind)
    if distributor_id is not None:
        flags = flags.filter(distributor_id=distributor_id)
    return flags.order_by("-created_at", "-id")


def flag_for_staff(*, flag_id: int) -> FraudFlag:
    flag = flags_for_staff().filter(pk=flag_id).first()
    if flag is None:
        raise NotFound("Fraud flag not found.", code=FraudErrorCode.FLAG_NOT_FOUND)
    return flag
