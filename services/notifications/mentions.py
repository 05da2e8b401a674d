"""User mentions in Plane's editor HTML, read with a real HTML parser (lexbor, via selectolax).

Plane's editor writes a mention as `<mention-component entity_name="user_mention"
entity_identifier="<user uuid>">`. Plane's task finds them with BeautifulSoup; lexbor parses the
custom element the same way (tag and attribute names case-insensitive, the `entity_name` value
exact), in C.

Two differences from Plane, both on purpose: a tag without `entity_identifier` is skipped
alone (BeautifulSoup's KeyError made Plane drop *every* mention of that HTML), and an identifier
that is not a UUID is dropped here (Plane's `UUID(mention)` on it crashed the whole task).
Order is first appearance, without repeats (Plane's `list(set(...))` had no order).
"""

from __future__ import annotations

import logging
import uuid

from selectolax.lexbor import LexborHTMLParser

log = logging.getLogger(__name__)

USER_MENTION = 'mention-component[entity_name="user_mention"]'


def user_mentions(html: object) -> list[uuid.UUID]:
    """The users mentioned in `html`; nothing for anything that is not a string of HTML."""
    if not isinstance(html, str) or "mention-component" not in html.lower():
        return []  # the common case, without building a DOM
    found: dict[uuid.UUID, None] = {}
    for node in LexborHTMLParser(html).css(USER_MENTION):
        identifier = node.attributes.get("entity_identifier")
        if not identifier:
            continue
        try:
            found.setdefault(uuid.UUID(identifier.strip()), None)
        except ValueError:
            log.info("mention of %r is not a user id: ignored", identifier[:64])
    return list(found)


def added(new_html: object, old_html: object) -> list[uuid.UUID]:
    """Mentions in the new HTML that the old one did not have (all of them when old is None)."""
    old = set(user_mentions(old_html))
    return [m for m in user_mentions(new_html) if m not in old]


def removed(new_html: object, old_html: object) -> list[uuid.UUID]:
    new = set(user_mentions(new_html))
    return [m for m in user_mentions(old_html) if m not in new]
