"""Consumer `notifications` (Plane's `notifications` task): in-app notifications, e-mail logs,
subscribers and mentions for the activities the issue-activity consumer created.

- payload.py: the `plane.notifications.v1` data parsed (Plane's JSON strings or plain JSON);
- mentions.py: `<mention-component>` user mentions in editor HTML;
- reads.py / store.py: every read a batch needs, one query per kind, and its multi-row writes;
- rules.py: pure: who gets which notification and e-mail log (and Plane's bugs it fixes);
- handler.py: the batch handler the runtime calls;
- samples.py: conformance samples and the Plane-shaped inputs the tests build.
"""
