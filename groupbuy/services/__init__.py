"""Group-buy's services, one module per flow (groups.py, bargains.py, chains.py, community.py)."""
