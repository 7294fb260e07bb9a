"""Commission plans, ledger, wallets, withdrawals, pools, leaderboards (a later issue)."""
