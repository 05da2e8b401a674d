"""The mention and image components of a page's editor HTML, as `page_logs` rows describe them.

Plane's page_transaction reads `<mention-component id entity_identifier entity_name>` and
`<image-component id src>` with BeautifulSoup; lexbor (selectolax, the parser the notifications
consumer reads mentions with) finds the same custom elements, in document order.

Each component is keyed by its `id`, which becomes the log's `transaction` (a uuid column). Where
Plane's bulk insert would have failed for the whole page, the one bad component is dropped here
instead: an `id` that is not a UUID, a mention without `entity_name` (NOT NULL) or with one longer
than the column's 30 characters. An `entity_identifier` (mention target, image src) that is not a
UUID is stored as NULL (the column is a nullable uuid; Plane's insert failed on it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

log = logging.getLogger(__name__)

MENTION = "mention-component"
IMAGE = "image-component"
IMAGE_ENTITY_NAME = "image"
MAX_ENTITY_NAME = 30  # page_logs.entity_name is varchar(30)


@dataclass(frozen=True)
class Component:
    transaction: uuid.UUID  # the component's id
    entity_name: str  # the mention's entity_name, or "image"
    entity_identifier: uuid.UUID | None  # the mention's target, or the image's src (an asset id)


def components(html: str | None) -> dict[uuid.UUID, Component]:
    """Every usable component of `html` by id, first occurrence of an id winning."""
    if not html or ("mention-component" not in html.lower() and "image-component" not in html.lower()):
        return {}  # the common case, without building a DOM
    found: dict[uuid.UUID, Component] = {}
    for node in LexborHTMLParser(html).css(f"{MENTION}, {IMAGE}"):
        component = _component(node.tag, node.attributes)
        if component is not None:
            found.setdefault(component.transaction, component)
    return found


def component_ids(html: str | None) -> set[uuid.UUID]:
    """The id of every component in `html`, usable or not: a component still there, even one
    whose entity_name went bad, was not removed (Plane compares ids)."""
    if not html or ("mention-component" not in html.lower() and "image-component" not in html.lower()):
        return set()
    nodes = LexborHTMLParser(html).css(f"{MENTION}, {IMAGE}")
    return {t for node in nodes if (t := _uuid(node.attributes.get("id"))) is not None}


def _component(tag: str | None, attributes: dict[str, str | None]) -> Component | None:
    transaction = _uuid(attributes.get("id"))
    if transaction is None:
        if attributes.get("id"):
            log.info("%s id %r is not a UUID: not logged", tag, str(attributes["id"])[:64])
        return None  # Plane skips components without an id too
    if tag == IMAGE:
        return Component(transaction, IMAGE_ENTITY_NAME, _uuid(attributes.get("src")))
    name = (attributes.get("entity_name") or "").strip()
    if not name or len(name) > MAX_ENTITY_NAME:
        log.info("mention %s has no usable entity_name (%r): not logged", transaction, name[:64])
        return None
    return Component(transaction, name, _uuid(attributes.get("entity_identifier")))


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None
