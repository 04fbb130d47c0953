"""The SDK: topic declarations, idempotent provisioning, the city publisher, and what every Tongcheng
process shares (settings, the circle, validation, the DLQ, metrics, Kafka credentials)."""
