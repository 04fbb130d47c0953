"""Topic declarations, idempotent provisioning, and the city publisher SDK."""
