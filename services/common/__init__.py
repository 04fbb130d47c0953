"""Runtime shared by every Tongcheng process: settings, the circle, validation, DLQ, metrics."""
