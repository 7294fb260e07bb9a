"""Group-buy campaigns and groups; bargain campaigns and bargains (filled by a later issue)."""
