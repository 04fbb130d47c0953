"""The shared credit platform: one merged credit profile per subject."""
