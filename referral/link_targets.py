"""The link target referral owns (core/link_targets.py): a distributor's lead form."""

from core.link_targets import LinkTarget, register_target


def _lead_form(ident: int | None) -> LinkTarget:
    return LinkTarget(
        kind="lead_form", id=None, path="pages/lead/form", title="Contact me", live=True
    )


def register() -> None:
    register_target("lead_form", _lead_form, needs_id=False)
