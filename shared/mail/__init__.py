"""E-mail: SMTP sessions (smtp), message composition (message), Plane's SMTP configuration (config)."""
