"""Consumer `webhooks`: Plane's webhook delivery tasks (signing, retry schedule, dispatch)."""
