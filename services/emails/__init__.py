"""Consumer `emails`: Plane's transactional mails, one event type per mail, sent over SMTP."""
