"""The Celery bridge: Plane's AMQP `celery` queue to Kafka events (DESIGN.md "Migration from Celery")."""
