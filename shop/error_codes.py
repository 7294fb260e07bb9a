"""The shop's error codes, one enum per area (see core/error_codes.py for the rules: values are
the stable strings clients switch on, never renamed; each member carries its HTTP status)."""

from core.error_codes import ErrorCode


class ShopAuthErrorCode(ErrorCode):
    """Shopper login through WeChat."""

    WECHAT_CODE_INVALID = "wechat_code_invalid", 401
    WECHAT_RATE_LIMITED = "wechat_rate_limited", 429
    WECHAT_UNAVAILABLE = "wechat_unavailable", 502
    ACCOUNT_DISABLED = "account_disabled", 401


class CatalogErrorCode(ErrorCode):
    """Products, SKUs and their stock."""

    PRODUCT_NOT_FOUND = "product_not_found", 404
    SKU_NOT_FOUND = "sku_not_found", 404
    INVALID_STATUS = "invalid_status", 422
    PRODUCT_HAS_NO_SKUS = "product_has_no_skus", 409
    STOCK_WOULD_GO_NEGATIVE = "stock_would_go_negative", 409
    OUT_OF_STOCK = "out_of_stock", 409


class CustomerErrorCode(ErrorCode):
    """The shopper's own profile and addresses."""

    NOT_A_CUSTOMER = "not_a_customer", 403
    ADDRESS_NOT_FOUND = "address_not_found", 404
    ADDRESS_LIMIT_REACHED = "address_limit_reached", 409


class CommunityErrorCode(ErrorCode):
    """Communities, their leaders, members and pickup points."""

    COMMUNITY_NOT_FOUND = "community_not_found", 404
    CUSTOMER_NOT_FOUND = "customer_not_found", 404
    PICKUP_POINT_NOT_FOUND = "pickup_point_not_found", 404
    LEADER_CANNOT_LEAVE = "leader_cannot_leave", 409
    INVALID_COORDINATES = "invalid_coordinates", 422
    NAME_REQUIRED = "name_required", 422
    FIELD_REQUIRED = "field_required", 422


class OrderErrorCode(ErrorCode):
    """Placing orders and moving them through their states (shop/services/orders.py)."""

    ILLEGAL_TRANSITION = "illegal_transition", 409
    NO_LINES = "no_lines", 422
    TOO_MANY_LINES = "too_many_lines", 422
    INVALID_QUANTITY = "invalid_quantity", 422
    SKU_NOT_FOUND = "sku_not_found", 404
    PRODUCT_UNAVAILABLE = "product_unavailable", 409
    PURCHASE_LIMIT_EXCEEDED = "purchase_limit_exceeded", 409
    COUPON_INVALID = "coupon_invalid", 422
    COUPON_EXPIRED = "coupon_expired", 422
    COUPON_UNAVAILABLE = "coupon_unavailable", 409
    COUPON_NOT_APPLICABLE = "coupon_not_applicable", 422
    COUPON_NOT_STACKABLE = "coupon_not_stackable", 422
    INVALID_DELIVERY_MODE = "invalid_delivery_mode", 422
    COMMUNITY_NOT_FOUND = "community_not_found", 404
    COMMUNITY_INACTIVE = "community_inactive", 422
    COMMUNITY_REQUIRED = "community_required", 422
    COMMUNITY_HAS_NO_LEADER = "community_has_no_leader", 422
    PICKUP_POINT_REQUIRED = "pickup_point_required", 422
    PICKUP_POINT_UNAVAILABLE = "pickup_point_unavailable", 422
    PICKUP_POINT_NOT_IN_COMMUNITY = "pickup_point_not_in_community", 422
    ADDRESS_REQUIRED = "address_required", 422
    ADDRESS_NOT_FOUND = "address_not_found", 404
    ORDER_NOT_PAYABLE = "order_not_payable", 409
    NOT_COMMUNITY_LEADER = "not_community_leader", 403
    FULFILMENT_NOT_ALLOWED = "fulfilment_not_allowed", 403
    REFUND_IN_PROGRESS = "refund_in_progress", 409
    FULFILMENT_HELD = "fulfilment_held", 409


class CouponErrorCode(ErrorCode):
    """Coupon templates, the coupon centre, claims, issuance and code guessing
    (shop/services/coupons.py; checkout refusals are ``OrderErrorCode.COUPON_*``)."""

    TEMPLATE_NOT_FOUND = "coupon_template_not_found", 404
    TEMPLATE_INVALID = "coupon_template_invalid", 422
    COUPON_NOT_CLAIMABLE = "coupon_not_claimable", 409
    COUPON_SOLD_OUT = "coupon_sold_out", 409
    COUPON_LIMIT_REACHED = "coupon_limit_reached", 409
    SEGMENT_INVALID = "coupon_segment_invalid", 422
    NOT_ISSUABLE = "coupon_not_issuable", 409
    ISSUANCE_NOT_FOUND = "coupon_issuance_not_found", 404
    CUSTOMER_NOT_FOUND = "customer_not_found", 404
    ILLEGAL_TRANSITION = "illegal_transition", 409
    COUPON_CODE_RATE_LIMITED = "coupon_code_rate_limited", 429
    CODE_TAKEN = "coupon_code_taken", 409


# What choosing how an order is delivered can be refused with (order create, flash order create,
# checkout preview): one list, so the operations document the same codes.
DELIVERY_ERROR_CODES = (
    OrderErrorCode.INVALID_DELIVERY_MODE,
    OrderErrorCode.COMMUNITY_NOT_FOUND,
    OrderErrorCode.COMMUNITY_INACTIVE,
    OrderErrorCode.COMMUNITY_REQUIRED,
    OrderErrorCode.COMMUNITY_HAS_NO_LEADER,
    OrderErrorCode.PICKUP_POINT_REQUIRED,
    OrderErrorCode.PICKUP_POINT_UNAVAILABLE,
    OrderErrorCode.PICKUP_POINT_NOT_IN_COMMUNITY,
    OrderErrorCode.ADDRESS_REQUIRED,
    OrderErrorCode.ADDRESS_NOT_FOUND,
)


class PickupErrorCode(ErrorCode):
    """Pickup codes: showing one, redeeming one at the pickup point."""

    NO_PICKUP_CODE = "no_pickup_code", 409
    PICKUP_CODE_INVALID = "pickup_code_invalid", 404
    ALREADY_REDEEMED = "already_redeemed", 409
    NOT_COMMUNITY_LEADER = "not_community_leader", 403


class PaymentErrorCode(ErrorCode):
    """Payments, the provider and its webhooks, reconciliation."""

    ORDER_NOT_PAYABLE = "order_not_payable", 409
    PAYMENT_PROVIDER_ERROR = "payment_provider_error", 502
    NOT_SANDBOX = "not_sandbox", 409
    PAYMENT_ALREADY_SUCCEEDED = "payment_already_succeeded", 409
    INVALID_SIGNATURE = "invalid_signature", 400
    INVALID_PAYLOAD = "invalid_payload", 400
    DISCREPANCY_NOT_FOUND = "discrepancy_not_found", 404


class RefundErrorCode(ErrorCode):
    """Refund requests and decisions (shop/services/refunds.py)."""

    REFUND_NOT_FOUND = "refund_not_found", 404
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid", 409
    REFUND_SPEC_INVALID = "refund_spec_invalid", 422
    INVALID_QUANTITY = "invalid_quantity", 422
    INVALID_AMOUNT = "invalid_amount", 422
    ORDER_LINE_NOT_FOUND = "order_line_not_found", 404
    RESTOCK_NEEDS_UNITS = "restock_needs_units", 422
    ORDER_NOT_REFUNDABLE = "order_not_refundable", 409
    REFUND_IN_PROGRESS = "refund_in_progress", 409
    ILLEGAL_TRANSITION = "illegal_transition", 409


class FlashErrorCode(ErrorCode):
    """Flash sales (shop/services/flash.py). Sold out is ``out_of_stock`` and a customer over an
    item's cap ``purchase_limit_exceeded``, as for any order."""

    FLASH_SESSION_NOT_FOUND = "flash_session_not_found", 404
    FLASH_ITEM_NOT_FOUND = "flash_item_not_found", 404
    FLASH_NOT_STARTED = "flash_not_started", 409
    FLASH_ENDED = "flash_ended", 409
    FLASH_SESSION_INVALID = "flash_session_invalid", 422
    FLASH_SESSION_STARTED = "flash_session_started", 409
