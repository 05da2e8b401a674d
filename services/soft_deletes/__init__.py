"""Consumer `soft-deletes`: Plane's soft_delete_related_objects, batched and resumable."""
