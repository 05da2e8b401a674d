"""Real servers started from Python packages, used when no URL is configured (dev, demo, tests)."""
