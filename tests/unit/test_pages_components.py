"""Mention and image components out of page HTML (services/pages/components.py), and the event
schemas of the `pages` consumer."""

from __future__ import annotations

import uuid

import pytest

from services.pages.components import Component, components
from services.pages.handler import EVENT_TYPES, TRANSACTION, VERSION
from services.pages.samples import image, mention
from shared import registry
from shared.events import InvalidEvent, new_event
from shared.events.schemas import event_types

A, B, C, D = (uuid.UUID(int=n) for n in (1, 2, 3, 4))


def test_mentions_and_images_in_document_order() -> None:
    html = f"<p>{mention(A, C)}</p><div>{image(B, D)}<p>{mention(C, A, 'issue_mention')}</p></div>"
    assert list(components(html).values()) == [
        Component(A, "user_mention", C),
        Component(B, "image", D),
        Component(C, "issue_mention", A),
    ]


def test_tag_and_attribute_names_are_case_insensitive() -> None:
    html = (
        f'<MENTION-COMPONENT ID="{A}" Entity_Name="user_mention" ENTITY_IDENTIFIER="{B}"></MENTION-COMPONENT>'
    )
    assert components(html) == {A: Component(A, "user_mention", B)}


def test_a_repeated_id_keeps_its_first_component() -> None:
    html = mention(A, B) + image(A, C)
    assert components(html) == {A: Component(A, "user_mention", B)}


@pytest.mark.parametrize(
    "html",
    [
        f'<mention-component entity_name="user_mention" entity_identifier="{A}"></mention-component>',
        f'<image-component id="" src="{A}"></image-component>',
        f'<image-component id="img-1" src="{A}"></image-component>',
        f'<mention-component id="{A}" entity_identifier="{B}"></mention-component>',
        f'<mention-component id="{A}" entity_name="" entity_identifier="{B}"></mention-component>',
        mention(A, B, "x" * 31),
    ],
    ids=["no id", "empty id", "id not a uuid", "no entity_name", "empty entity_name", "entity_name too long"],
)
def test_a_component_that_cannot_be_a_log_row_is_skipped_alone(html: str) -> None:
    assert components(html + image(C, D)) == {C: Component(C, "image", D)}


def test_an_identifier_that_is_not_a_uuid_is_kept_as_none() -> None:
    html = image(A, "https://cdn.example/a.png") + mention(B, "someone")
    assert components(html) == {A: Component(A, "image", None), B: Component(B, "user_mention", None)}


@pytest.mark.parametrize("html", [None, "", "<p>plain text</p>", "<p>mention-component in text</p>"])
def test_nothing_to_log(html: str | None) -> None:
    assert components(html) == {}


def test_the_consumer_takes_both_events_and_each_has_a_schema() -> None:
    spec = registry.consumer("pages")
    assert spec.event_types == EVENT_TYPES
    assert set(EVENT_TYPES) <= set(event_types())
    assert spec.batch is not None and spec.batch.keep_key_order and spec.idempotency == "transaction"


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        (TRANSACTION, {"new_description_html": "<p></p>", "page_id": "page-1"}),
        (TRANSACTION, {"old_description_html": None, "page_id": str(A)}),  # no new HTML
        (TRANSACTION, {"new_description_html": 5, "page_id": str(A)}),
        (TRANSACTION, {"new_description_html": "", "page_id": str(A), "extra": 1}),
        (VERSION, {"page_id": str(A)}),  # no user
        (VERSION, {"page_id": str(A), "user_id": str(B), "existing_instance": {"description_html": ""}}),
    ],
)
def test_malformed_payloads_are_refused(event_type: str, data: dict) -> None:
    with pytest.raises(InvalidEvent) as refused:
        new_event(event_type, data)
    assert refused.value.kind == "schema_violation"


def test_plane_shaped_payloads_are_accepted() -> None:
    new_event(
        TRANSACTION, {"new_description_html": "<p></p>", "old_description_html": None, "page_id": str(A)}
    )
    new_event(VERSION, {"page_id": str(A), "existing_instance": None, "user_id": str(B)})
    new_event(
        VERSION,
        {"page_id": str(A), "existing_instance": '{"description_html": "<p></p>"}', "user_id": str(B)},
    )
