"""Sinks: components that take events off the bus and deliver them elsewhere (Kafka, S3, …)."""
