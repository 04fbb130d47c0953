"""What a city's downstream service ships, built on the SDK (`topics`) and the schemas alone: the
sanction inbox, the reference consumer."""
