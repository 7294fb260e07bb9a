"""Referral's error codes (see core/error_codes.py for the rules: values are the stable strings
clients switch on, never renamed; each member carries its HTTP status)."""

from core.error_codes import ErrorCode


class DistributorErrorCode(ErrorCode):
    """Onboarding, profiles, status changes and the tree (referral/services/distributors.py)."""

    NOT_A_DISTRIBUTOR = "not_a_distributor", 404
    DISTRIBUTOR_NOT_FOUND = "distributor_not_found", 404
    ALREADY_DISTRIBUTOR = "already_distributor", 409
    ONBOARDING_CLOSED = "onboarding_closed", 409
    SPEND_THRESHOLD_NOT_MET = "spend_threshold_not_met", 409
    DISTRIBUTOR_NOT_ACTIVE = "distributor_not_active", 409
    ILLEGAL_TRANSITION = "illegal_transition", 409
    WOULD_CYCLE = "referral_cycle", 409
    PROFILE_INVALID = "distributor_profile_invalid", 422
    POLICY_INVALID = "referral_policy_invalid", 422
    REASON_INVALID = "distributor_reason_invalid", 422
    CUSTOMER_NOT_FOUND = "customer_not_found", 404


class LinkErrorCode(ErrorCode):
    """Share links, QR codes and clicks (referral/services/links.py, clicks.py)."""

    LINK_NOT_FOUND = "link_not_found", 404
    LINK_TARGET_NOT_FOUND = "link_target_not_found", 404
    LINK_INVALID = "link_invalid", 422
    LINK_LIMIT_REACHED = "link_limit_reached", 409
    STATS_RANGE_INVALID = "link_stats_range_invalid", 422


class AttributionErrorCode(ErrorCode):
    """Attribution rule versions and attributions (referral/services/attribution.py)."""

    RULE_INVALID = "attribution_rule_invalid", 422
    ATTRIBUTION_NOT_FOUND = "attribution_not_found", 404
    PAID_LEVELS_CAPPED = "paid_levels_capped", 422


class ExclusiveCodeErrorCode(ErrorCode):
    """Exclusive (distributor) coupon codes (referral/services/codes.py)."""

    EXCLUSIVE_CODE_INVALID = "exclusive_code_invalid", 422
    EXCLUSIVE_CODE_NOT_FOUND = "exclusive_code_not_found", 404


class LeadErrorCode(ErrorCode):
    """Lead forms (referral/services/leads.py)."""

    LEAD_NOT_FOUND = "lead_not_found", 404
    LEAD_INVALID = "lead_invalid", 422
    CONSENT_REQUIRED = "consent_required", 422
    LEAD_ILLEGAL_TRANSITION = "lead_illegal_transition", 409


class FraudErrorCode(ErrorCode):
    """Fraud flags and their review (referral/services/fraud.py)."""

    FLAG_NOT_FOUND = "fraud_flag_not_found", 404
    FLAG_ALREADY_REVIEWED = "fraud_flag_already_reviewed", 409
    FLAG_NOTE_INVALID = "fraud_flag_note_invalid", 422
