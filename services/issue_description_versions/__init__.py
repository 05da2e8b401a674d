"""Consumer `issue-description-versions`: Plane's issue_description_version_task."""
