"""Cross-border emergency notification: routing, deadlines and acknowledgements."""
