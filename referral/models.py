"""Distributors, share links, bindings, the referral tree, attribution (a later issue)."""
