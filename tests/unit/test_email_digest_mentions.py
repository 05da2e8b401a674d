"""The digest's mentions, read as HTML (lexbor) the way Plane's BeautifulSoup reads them."""

from __future__ import annotations

import uuid

from cronjobs.email_digest_mail import LogEntry, Person, _mentions, mentioned_ids

ADA = uuid.uuid4()
PEOPLE = {ADA: Person("ada@example.com", "Ada", "L", "ada", "")}


def test_every_mention_component_becomes_the_display_name_whatever_its_markup() -> None:
    html = (
        f'<p>a <MENTION-COMPONENT data-x="1 > 0" entity_identifier="{ADA}" entity_name="user_mention">'
        f"</MENTION-COMPONENT> b <mention-component entity_identifier=' {ADA} '></mention-component>"
        " c &amp; d</p>"
    )
    [out] = _mentions([html], PEOPLE) or []
    assert out == "<p>a @ada b @ada c &amp; d</p>"


def test_unknown_or_malformed_mentions_are_left_and_plain_text_untouched() -> None:
    unknown = f'<p><mention-component entity_identifier="{uuid.uuid4()}"></mention-component></p>'
    broken = '<p><mention-component entity_identifier="not-a-uuid"></mention-component></p>'
    assert _mentions([unknown, broken, "no mentions < here"], PEOPLE) == [
        unknown,
        broken,
        "no mentions < here",
    ]
    assert _mentions(None, PEOPLE) is None


def test_mentioned_ids_from_both_sides_of_mention_activities_only() -> None:
    other = uuid.uuid4()
    entries = [
        LogEntry(uuid.uuid4(), ADA, {"issue_activity": {"field": "mention", "old_value": None,
                 "new_value": f'<mention-component entity_identifier="{ADA}"></mention-component>'}}),
        LogEntry(uuid.uuid4(), ADA, {"issue_activity": {"field": "mention",
                 "old_value": f"<Mention-Component entity_identifier='{other}'>", "new_value": "x"}}),
        LogEntry(uuid.uuid4(), ADA, {"issue_activity": {"field": "description",
                 "new_value": f'<mention-component entity_identifier="{uuid.uuid4()}">'}}),
    ]  # fmt: skip
    assert mentioned_ids(entries) == {ADA, other}
