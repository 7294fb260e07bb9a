"""Shop use cases, one module per area; each function is one state change, atomic inside."""
