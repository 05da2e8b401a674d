"""The translator as a pure function over preloaded lookups (no database).

The column-by-column goldens per type and tracker are in
tests/integration/test_issue_activity_rows.py; these cover the decisions around them: skips,
invalid input, lookups protocol, determinism, batching and Plane's bugs that are fixed.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.issue_activity import (
    InvalidActivity,
    Kind,
    LookupNotLoaded,
    Lookups,
    translate,
    translate_batch,
)
from services.issue_activity.lookups import EstimatePointRef, IssueRef, LatestActivity, NamedRef, ProjectRef
from services.issue_activity.translate import ROW_SPACING, row_id

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PROJECT, WORKSPACE = uuid.uuid4(), uuid.uuid4()
ACTOR, OTHER = uuid.uuid4(), uuid.uuid4()
ISSUE, RELATED = uuid.uuid4(), uuid.uuid4()
LABEL_A, LABEL_B = uuid.uuid4(), uuid.uuid4()
POINT_3 = uuid.uuid4()


def world() -> Lookups:
    lk = Lookups()
    lk.put(Kind.PROJECT, PROJECT, ProjectRef(PROJECT, WORKSPACE))
    lk.put(Kind.USER, ACTOR, NamedRef(ACTOR, "actor"))
    lk.put(Kind.USER, OTHER, NamedRef(OTHER, "other"))
    created = NOW - timedelta(days=3)
    lk.put(Kind.ISSUE, ISSUE, IssueRef(ISSUE, PROJECT, "WEB", 7, created, OTHER, False))
    lk.put(Kind.ISSUE, RELATED, IssueRef(RELATED, PROJECT, "WEB", 9, created, OTHER, False))
    lk.put(Kind.LABEL, LABEL_A, NamedRef(LABEL_A, "bug"))
    lk.put(Kind.LABEL, LABEL_B, None)  # deleted since the request
    lk.put(Kind.ESTIMATE_POINT, POINT_3, EstimatePointRef(POINT_3, "3", "points"))
    lk.put(Kind.LATEST_ACTIVITY, ISSUE, None)
    return lk


def event(type_: str = "issue.activity.updated", requested: object = None, current: object = None, **kw):
    data = {
        "type": type_,
        "requested_data": requested
        if requested is None or isinstance(requested, str)
        else json.dumps(requested),
        "current_instance": current if current is None or isinstance(current, str) else json.dumps(current),
        "issue_id": str(ISSUE),
        "actor_id": str(ACTOR),
        "project_id": str(PROJECT),
        "epoch": 1746100800,
    }
    data.update(kw)
    return data


def test_project_id_that_is_not_v4_is_skipped_silently_as_plane_does() -> None:
    result = translate(event(project_id=str(uuid.uuid1())), world(), now=NOW)
    assert result.skipped is not None and "UUID v4" in result.skipped
    assert result.rows == [] and result.touch_issue_ids == []


def test_missing_project_is_skipped() -> None:
    lk = world()
    gone = uuid.uuid4()
    lk.put(Kind.PROJECT, gone, None)
    result = translate(event(project_id=str(gone)), lk, now=NOW)
    assert result.skipped == f"project {gone} does not exist or is deleted"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"actor_id": "nope"}, "actor_id"),
        ({"actor_id": None}, "actor_id is required"),
        ({"issue_id": "nope"}, "issue_id"),
        ({"epoch": "yesterday"}, "epoch"),
    ],
)
def test_bad_ids_are_invalid_activity(override: dict, match: str) -> None:
    with pytest.raises(InvalidActivity, match=match):
        translate(event(requested={"name": "x"}, current={"name": "y"}, **override), world(), now=NOW)


def test_unknown_actor_is_invalid_because_the_rows_foreign_key_would_fail() -> None:
    lk = world()
    ghost = uuid.uuid4()
    lk.put(Kind.USER, ghost, None)
    with pytest.raises(InvalidActivity, match="does not exist"):
        translate(event(requested={"name": "x"}, current={"name": "y"}, actor_id=str(ghost)), lk, now=NOW)


def test_unknown_type_writes_nothing_but_still_touches_the_issue() -> None:
    result = translate(event("sprint.activity.created"), world(), now=NOW)
    assert result.rows == []
    assert result.touch_issue_ids == [ISSUE]
    assert "unknown activity type" in result.warnings[0]


def test_requested_data_not_json_is_invalid() -> None:
    with pytest.raises(InvalidActivity, match="requested_data is not JSON"):
        translate(event(requested="{oops"), world(), now=NOW)


def test_update_without_current_instance_is_invalid_for_trackers_that_read_it() -> None:
    with pytest.raises(InvalidActivity, match="current_instance"):
        translate(event(requested={"name": "x"}), world(), now=NOW)


def test_not_prefetched_key_is_a_caller_bug_not_a_silent_absence() -> None:
    lk = world()
    with pytest.raises(LookupNotLoaded):
        translate(event(requested={"label_ids": [str(uuid.uuid4())]}, current={"label_ids": []}), lk, now=NOW)


def test_recording_notes_missing_keys_instead_of_raising() -> None:
    lk = world()
    unknown = uuid.uuid4()
    lk.recording = True
    translate(event(requested={"label_ids": [str(unknown)]}, current={"label_ids": []}), lk, now=NOW)
    assert lk.take_missing() == {Kind.LABEL: {unknown}}
    assert lk.take_missing() == {}


def test_rows_are_a_microsecond_apart_and_ids_derive_from_the_event_id() -> None:
    data = event(requested={"name": "new", "priority": "high"}, current={"name": "old", "priority": "low"})
    a = translate(data, world(), now=NOW, id_seed="evt-1")
    b = translate(data, world(), now=NOW, id_seed="evt-1")
    assert [r.field for r in a.rows] == ["name", "priority"]  # the request's key order
    assert [r.created_at for r in a.rows] == [NOW, NOW + ROW_SPACING]
    assert [r.id for r in a.rows] == [r.id for r in b.rows] == [row_id("evt-1", 0), row_id("evt-1", 1)]
    assert all(r.id.version == 4 for r in a.rows)
    assert translate(data, world(), now=NOW).rows[0].id != a.rows[0].id  # random without a seed


def test_a_tracker_named_twice_runs_once() -> None:
    """Plane wrote two identical rows for a request carrying both `state_id` and `state`."""
    lk = world()
    state = uuid.uuid4()
    lk.put(Kind.STATE, (state, PROJECT), NamedRef(state, "Done"))
    requested = {"state_id": str(state), "state": str(state)}
    result = translate(event(requested=requested, current={"state_id": None}), lk, now=NOW)
    assert [(r.field, r.new_value) for r in result.rows] == [("state", "Done")]


def test_labels_skip_non_v4_ids_and_leave_out_a_deleted_label_with_a_warning() -> None:
    requested = {"label_ids": [str(LABEL_A), str(LABEL_B), "garbage", str(uuid.uuid1())]}
    result = translate(event(requested=requested, current={"label_ids": []}), world(), now=NOW)
    assert [(r.comment, r.new_value, r.new_identifier) for r in result.rows] == [
        ("added label ", "bug", LABEL_A)
    ]
    assert result.warnings == [f"label {LABEL_B} no longer exists: its 'added label' row is left out"]


def test_labels_as_a_string_are_invalid_rather_than_iterated_by_character() -> None:
    with pytest.raises(InvalidActivity, match="label_ids must be a list"):
        translate(event(requested={"label_ids": str(LABEL_A)}, current={"label_ids": []}), world(), now=NOW)


def test_clearing_an_estimate_does_not_abort_the_event() -> None:
    """Plane's bug 14: `new_estimate.estimate.type` on None raised and the event was lost."""
    requested = {"estimate_point": None, "name": "renamed"}
    current = {"estimate_point": str(POINT_3), "name": "old"}
    result = translate(event(requested=requested, current=current), world(), now=NOW)
    estimate, name = result.rows
    assert (estimate.verb, estimate.field, estimate.old_value, estimate.new_value) == (
        "removed",
        "estimate_points",
        "3",
        None,
    )
    assert (estimate.old_identifier, estimate.new_identifier) == (POINT_3, None)
    assert name.field == "name"


def test_clearing_an_estimate_whose_point_is_gone_uses_the_legacy_field_name() -> None:
    lk = world()
    gone = uuid.uuid4()
    lk.put(Kind.ESTIMATE_POINT, gone, None)
    result = translate(
        event(requested={"estimate_point": None}, current={"estimate_point": str(gone)}), lk, now=NOW
    )
    assert [(r.verb, r.field, r.old_value, r.old_identifier) for r in result.rows] == [
        ("removed", "estimate_point", None, gone)
    ]


def test_estimate_point_that_is_not_a_uuid_is_invalid() -> None:
    with pytest.raises(InvalidActivity, match="estimate_point"):
        translate(
            event(requested={"estimate_point": "three"}, current={"estimate_point": None}), world(), now=NOW
        )


def test_description_coalesces_with_the_same_actors_previous_edit() -> None:
    lk = world()
    previous = uuid.uuid4()
    lk.put(
        Kind.LATEST_ACTIVITY,
        ISSUE,
        LatestActivity(previous, "description", ACTOR, NOW - timedelta(minutes=1)),
    )
    data = event(requested={"description_html": "<p>b</p>"}, current={"description_html": "<p>a</p>"})
    result = translate(data, lk, now=NOW)
    assert result.rows == []
    assert [(b.activity_id, b.created_at) for b in result.description_bumps] == [(previous, NOW)]


def test_description_from_another_actor_writes_a_new_row() -> None:
    lk = world()
    lk.put(Kind.LATEST_ACTIVITY, ISSUE, LatestActivity(uuid.uuid4(), "description", OTHER, NOW))
    data = event(requested={"description_html": "<p>b</p>"}, current={"description_html": "<p>a</p>"})
    result = translate(data, lk, now=NOW)
    assert [(r.field, r.old_value, r.new_value) for r in result.rows] == [
        ("description", "<p>a</p>", "<p>b</p>")
    ]
    assert result.description_bumps == []


def test_batch_lets_the_second_edit_see_the_first_as_latest_activity() -> None:
    edit1 = event(requested={"description_html": "<p>b</p>"}, current={"description_html": "<p>a</p>"})
    edit2 = event(requested={"description_html": "<p>c</p>"}, current={"description_html": "<p>b</p>"})
    first, second = translate_batch([("e1", edit1), ("e2", edit2)], world(), now=NOW)
    assert not isinstance(first, InvalidActivity) and not isinstance(second, InvalidActivity)
    assert len(first.rows) == 1 and second.rows == []
    assert [(b.activity_id, b.created_at) for b in second.description_bumps] == [
        (first.rows[0].id, NOW + ROW_SPACING)
    ]


def test_batch_isolates_an_invalid_event() -> None:
    good = event(requested={"priority": "high"}, current={"priority": "low"})
    outcomes = translate_batch([("bad", event(requested="{")), ("good", good)], world(), now=NOW)
    assert isinstance(outcomes[0], InvalidActivity)
    assert not isinstance(outcomes[1], InvalidActivity) and outcomes[1].rows[0].new_value == "high"


def test_assignee_addition_returns_the_subscriber_instead_of_writing_it() -> None:
    result = translate(
        event(requested={"assignee_ids": [str(OTHER)]}, current={"assignee_ids": []}), world(), now=NOW
    )
    assert [(s.issue_id, s.subscriber_id, s.project_id, s.workspace_id) for s in result.subscribers] == [
        (ISSUE, OTHER, PROJECT, WORKSPACE)
    ]
    assert [(r.comment, r.new_value, r.new_identifier) for r in result.rows] == [
        ("added assignee ", "other", OTHER)
    ]


def test_relation_to_a_missing_issue_leaves_that_pair_out() -> None:
    lk = world()
    gone = uuid.uuid4()
    lk.put(Kind.ISSUE, gone, None)
    requested = {"relation_type": "blocking", "issues": [str(gone), str(RELATED)]}
    result = translate(event("issue_relation.activity.created", requested=requested), lk, now=NOW)
    assert [(r.issue_id, r.field, r.new_value) for r in result.rows] == [
        (ISSUE, "blocking", "WEB-9"),
        (RELATED, "blocked_by", "WEB-7"),
    ]
    assert len(result.warnings) == 1


def test_rows_on_issues_that_do_not_exist_are_left_out_not_failing_the_commit() -> None:
    lk = world()
    gone = uuid.uuid4()
    lk.put(Kind.ISSUE, gone, None)
    result = translate(
        event(
            "cycle.activity.deleted", requested={"cycle_id": None, "cycle_name": "S1", "issues": [str(gone)]}
        ),
        lk,
        now=NOW,
    )
    assert result.rows == [] and f"issue {gone} does not exist" in result.warnings[0]


def test_overlong_relation_type_is_invalid_instead_of_failing_the_batch_insert() -> None:
    requested = {"relation_type": "x" * 300, "issues": [str(RELATED)]}
    with pytest.raises(InvalidActivity, match="longer than 255"):
        translate(event("issue_relation.activity.created", requested=requested), world(), now=NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        translate(event(), world(), now=datetime(2026, 5, 1))


def test_created_issue_that_is_gone_writes_nothing_with_a_warning() -> None:
    lk = world()
    gone = uuid.uuid4()
    lk.put(Kind.ISSUE, gone, IssueRef(gone, PROJECT, "WEB", 1, NOW, OTHER, True))  # soft-deleted
    result = translate(
        event("issue.activity.created", requested={"name": "x"}, issue_id=str(gone)), lk, now=NOW
    )
    assert result.rows == [] and result.touch_issue_ids == []
    assert "does not exist (or is deleted)" in result.warnings[0]


def test_created_issue_without_requested_data_keeps_the_created_row() -> None:
    """Plane saved the created row before reading requested_data, then crashed on None."""
    result = translate(event("issue.activity.created"), world(), now=NOW)
    assert [(r.verb, r.comment, r.actor_id) for r in result.rows] == [("created", "created the issue", OTHER)]
    assert result.rows[0].created_at == NOW - timedelta(days=3)  # the issue's own creation time
    assert result.rows[0].updated_at == NOW


@pytest.mark.parametrize(
    ("current", "match"),
    [
        ({"updated_cycle_issues": []}, "created_cycle_issues"),
        ({"updated_cycle_issues": {}, "created_cycle_issues": "[]"}, "updated_cycle_issues must be a list"),
        ({"created_cycle_issues": "[{}]"}, "must have 'fields'"),
        ({"created_cycle_issues": "[not json"}, "created_cycle_issues is not JSON"),
    ],
)
def test_malformed_cycle_payloads_are_invalid(current: dict, match: str) -> None:
    with pytest.raises(InvalidActivity, match=match):
        translate(
            event("cycle.activity.created", requested={}, current=current, issue_id=None), world(), now=NOW
        )


def test_relation_deleted_keeps_the_first_row_when_the_events_issue_is_gone() -> None:
    lk = world()
    lk.put(Kind.ISSUE, ISSUE, IssueRef(ISSUE, PROJECT, "WEB", 7, NOW, OTHER, True))
    requested = {"related_issue": str(RELATED), "relation_type": "blocked_by"}
    result = translate(event("issue_relation.activity.deleted", requested=requested), lk, now=NOW)
    # The soft-deleted issue still satisfies the row's foreign key; only the mirror needs it live.
    assert [(r.issue_id, r.field, r.old_value) for r in result.rows] == [(ISSUE, "blocked_by", "WEB-9")]
    assert "mirror row is left out" in result.warnings[0]


@pytest.mark.parametrize(
    ("relation", "inverse"),
    [("blocked_by", "blocking"), ("finish_after", "finish_before"), ("implements", "implemented_by"),
     ("duplicate", "duplicate")],
)  # fmt: skip
def test_relation_deleted_mirror_uses_the_inverse_type(relation: str, inverse: str) -> None:
    requested = {"related_issue": str(RELATED), "relation_type": relation}
    result = translate(event("issue_relation.activity.deleted", requested=requested), world(), now=NOW)
    assert [(r.issue_id, r.field, r.comment, r.old_identifier) for r in result.rows] == [
        (ISSUE, relation, f"deleted {relation} relation", RELATED),
        (RELATED, inverse, f"deleted {inverse} relation", ISSUE),
    ]


def test_relation_created_with_current_instance_writes_nothing_as_in_plane() -> None:
    requested = {"relation_type": "blocking", "issues": [str(RELATED)]}
    result = translate(
        event("issue_relation.activity.created", requested=requested, current={}), world(), now=NOW
    )
    assert result.rows == []


def test_reactions_and_votes_without_payload_write_nothing() -> None:
    for type_ in (
        "issue_reaction.activity.created",
        "issue_vote.activity.created",
        "issue_vote.activity.deleted",
    ):
        assert translate(event(type_), world(), now=NOW).rows == [], type_


def test_comment_reaction_that_cannot_be_found_is_a_warning_not_a_crash() -> None:
    lk = world()
    lk.put(Kind.COMMENT_REACTION, (PROJECT, ACTOR, "128077"), None)
    result = translate(
        event("comment_reaction.activity.created", requested={"reaction": "128077"}, issue_id=None),
        lk,
        now=NOW,
    )
    assert result.rows == [] and "no such comment reaction" in result.warnings[0]


@pytest.mark.parametrize(
    ("status", "name"), [(-2, "Pending"), (0, "Snoozed"), (2, "Duplicate"), ("1", None), ([1], None)]
)
def test_intake_status_maps_ints_only_as_plane_dict_does(status: object, name: str | None) -> None:
    result = translate(
        event("intake.activity.created", requested={"status": status}, current={"status": 1}),
        world(),
        now=NOW,
    )
    assert [(r.verb, r.old_value, r.new_value) for r in result.rows] == [(str(status), "Accepted", name)]


def test_closed_to_a_state_that_is_gone_is_left_out() -> None:
    lk = world()
    gone = uuid.uuid4()
    lk.put(Kind.STATE, (gone, PROJECT), None)
    result = translate(event(requested={"closed_to": str(gone)}), lk, now=NOW)
    assert result.rows == [] and "not a live state" in result.warnings[0]
