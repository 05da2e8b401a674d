"""The Kafka runtime: consumers are registry entries plus handlers; arroyo owns the loop."""
