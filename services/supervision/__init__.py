"""Supervision of the annual cooperation-project list: milestones, on-time ratios, traffic lights."""
