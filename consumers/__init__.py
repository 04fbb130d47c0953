"""What downstream services use to subscribe: the typed subscriber and the reference consumers."""
