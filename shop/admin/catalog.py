"""Admin registrations for this area."""
