"""Consumer `pages`: Plane's page_transaction and track_page_version tasks."""
