"""Group-buy's error codes (see core/error_codes.py for the rules: values are the stable strings
clients switch on, never renamed; each member carries its HTTP status)."""

from core.error_codes import ErrorCode


class GroupBuyErrorCode(ErrorCode):
    """Opening and joining groups, and operators' campaign checks (groupbuy/services/groups.py)."""

    CAMPAIGN_NOT_FOUND = "campaign_not_found", 404
    CAMPAIGN_NOT_ACTIVE = "campaign_not_active", 409
    CAMPAIGN_SKU_NOT_FOUND = "campaign_sku_not_found", 404
    GROUP_NOT_FOUND = "group_not_found", 404
    GROUP_FULL = "group_full", 409
    GROUP_CLOSED = "group_closed", 409
    ALREADY_JOINED = "already_joined", 409
    GROUP_NOT_JOINABLE = "group_not_joinable", 409
    TOO_MANY_OPEN_GROUPS = "too_many_open_groups", 409
    QUANTITY_OVER_LIMIT = "quantity_over_limit", 422
    CAMPAIGN_INVALID = "campaign_invalid", 422
