"""Group-buy's API schemas, one module per flow."""
