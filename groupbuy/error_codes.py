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


class BargainErrorCode(ErrorCode):
    """Starting, helping and buying bargains, and operators' bargain campaign checks
    (groupbuy/services/bargains.py)."""

    BARGAIN_CAMPAIGN_NOT_FOUND = "bargain_campaign_not_found", 404
    BARGAIN_CAMPAIGN_NOT_ACTIVE = "bargain_campaign_not_active", 409
    BARGAIN_CAMPAIGN_INVALID = "bargain_campaign_invalid", 422
    BARGAIN_NOT_FOUND = "bargain_not_found", 404
    TOO_MANY_BARGAINS = "too_many_bargains", 409
    BARGAIN_CLOSED = "bargain_closed", 409
    CANNOT_HELP_OWN_BARGAIN = "cannot_help_own_bargain", 409
    ALREADY_HELPED = "already_helped", 409
    HELP_LIMIT_REACHED = "help_limit_reached", 409
    DEVICE_HELP_LIMIT_REACHED = "device_help_limit_reached", 409
    HELPER_NOT_NEW = "helper_not_new", 409
    BARGAIN_NOT_AT_FLOOR = "bargain_not_at_floor", 409
    BARGAIN_ORDER_PENDING = "bargain_order_pending", 409


class ChainErrorCode(ErrorCode):
    """Chain sign-up posts and entries, community announcements and pickup notices
    (groupbuy/services/chains.py, groupbuy/services/community.py)."""

    POST_NOT_FOUND = "post_not_found", 404
    POST_ITEM_NOT_FOUND = "post_item_not_found", 404
    POST_INVALID = "post_invalid", 422
    POST_CLOSED = "post_closed", 409
    POST_NOT_CLOSED = "post_not_closed", 409
    POST_FULL = "post_full", 409
    POST_ITEM_SOLD_OUT = "post_item_sold_out", 409
    ALREADY_SIGNED_UP = "already_signed_up", 409
    ENTRY_INVALID = "entry_invalid", 422
    ENTRY_NOT_FOUND = "entry_not_found", 404
    ENTRY_NOT_CANCELLABLE = "entry_not_cancellable", 409
    NOT_COMMUNITY_MEMBER = "not_community_member", 403
    NOT_COMMUNITY_LEADER = "not_community_leader", 403
    ANNOUNCEMENT_NOT_FOUND = "announcement_not_found", 404
    ANNOUNCEMENT_INVALID = "announcement_invalid", 422
