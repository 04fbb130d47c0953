"""The joint reward-and-punishment list (DESIGN.md section 5)."""
