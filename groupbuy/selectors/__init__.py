"""Group-buy's read side, one module per flow."""
