"""Mentions in Plane's editor HTML (services/notifications/mentions.py)."""

from __future__ import annotations

import uuid

import pytest

from services.notifications import mentions

A, B, C = (uuid.UUID(int=n, version=4) for n in (1, 2, 3))


def tag(identifier: object, name: str = "user_mention", **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    opening = f'<mention-component entity_name="{name}" entity_identifier="{identifier}"{extra}>'
    return opening + "</mention-component>"


def test_user_mentions_in_order_of_first_appearance_without_repeats() -> None:
    html = f"<p>{tag(B)} and {tag(A, id='x')}</p><ul><li>{tag(B)}</li></ul>"
    assert mentions.user_mentions(html) == [B, A]


def test_only_user_mentions_count() -> None:
    assert mentions.user_mentions(tag(A, name="issue_mention") + tag(B, name="USER_MENTION")) == []


def test_tag_and_attribute_names_are_case_insensitive_as_html_is() -> None:
    html = f'<MENTION-COMPONENT ENTITY_NAME="user_mention" ENTITY_IDENTIFIER="{A}"></MENTION-COMPONENT>'
    assert mentions.user_mentions(html) == [A]


def test_self_closing_and_nested_tags_are_found() -> None:
    closed = f'<mention-component entity_name="user_mention" entity_identifier="{B}"/>'
    html = f"<table><tr><td>{tag(A)}</td></tr></table>{closed}"
    assert mentions.user_mentions(html) == [A, B]


def test_a_tag_without_identifier_or_with_a_non_uuid_is_skipped_alone() -> None:
    """Plane lost every mention of the HTML to the KeyError, and crashed on the bad UUID."""
    html = '<mention-component entity_name="user_mention"></mention-component>' + tag("not-a-uuid") + tag(C)
    assert mentions.user_mentions(html) == [C]


def test_mentions_in_comments_or_scripts_are_not_mentions() -> None:
    assert mentions.user_mentions(f"<!-- {tag(A)} --><script>{tag(B)}</script>{tag(C)}") == [C]


@pytest.mark.parametrize("html", [None, "", "<p>no mentions</p>", 42, {"description_html": tag(A)}])
def test_anything_without_mentions_or_not_html_gives_none(html: object) -> None:
    assert mentions.user_mentions(html) == []


def test_added_and_removed_diff_the_two_sides() -> None:
    old, new = tag(A) + tag(B), tag(B) + tag(C)
    assert mentions.added(new, old) == [C]
    assert mentions.removed(new, old) == [A]
    assert mentions.added(new, None) == [B, C]  # a new comment: every mention is new
    assert mentions.removed(None, old) == [A, B]
