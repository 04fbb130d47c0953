"""What the processes of this installation share beyond the SDK: the stream runtime, the signing keys
held here, rules data files, rate-limited logs and the shutdown flag. (Settings, the circle,
validation, the DLQ and metrics are the SDK's, in `topics/`.)"""
