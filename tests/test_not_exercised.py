"""The "not exercised" list: update and delete handler permissions no run needed, from the
registry schemas cfn-lint ships; listed for review, never granted."""

from __future__ import annotations

from typing import Any

import pytest

from discover import iamdb
from discover.iamdb import Action
from discover.not_exercised import (
    Exercised,
    Handler,
    exercised,
    handler_permissions,
    not_exercised,
    render_section,
    template_types,
)
from discover.policy import Grant, PolicyDocument
from discover.report import render_report
from discover.run_events import Event, PhaseStarted, RunFinished, RunStarted
from discover.template import schema

TEMPLATE: dict[str, Any] = {
    "Resources": {
        "HelloLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {}},
        "OtherLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {}},
        "HelloLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
        "Seed": {"Type": "Custom::Seed", "Properties": {}},
    }
}
ROLE = "arn:aws:lambda:us-east-1:123456789012:function:hello-dev-hello"


def _policy(*actions: str) -> PolicyDocument:
    return PolicyDocument(frozenset(Grant(Action(a), ROLE) for a in actions))


def _listed(resource_type: str, handler: str) -> list[str]:
    found = schema(resource_type)
    assert found is not None
    return [str(p) for p in found["handlers"][handler]["permissions"]]


@pytest.mark.parametrize(
    ("resource_type", "handler"),
    [
        ("AWS::Lambda::Function", Handler.UPDATE),
        ("AWS::Lambda::Function", Handler.DELETE),
        ("AWS::Logs::LogGroup", Handler.UPDATE),
        ("AWS::IAM::Role", Handler.DELETE),
        ("AWS::S3::Bucket", Handler.UPDATE),
    ],
)
def test_the_handler_permissions_are_the_schemas_iam_actions(
    resource_type: str, handler: Handler
) -> None:
    """What the schema lists, in canonical case, without names that are not IAM actions."""
    listed = _listed(resource_type, handler.value)
    found = handler_permissions(resource_type, handler)
    assert found is not None
    assert found
    assert found == tuple(sorted(found))
    for name in listed:
        canonical = iamdb.canonical_action(name)
        assert canonical in found if canonical is not None else name not in found


def test_a_name_that_is_no_iam_action_is_dropped() -> None:
    """AWS::Logs::LogGroup's update handler lists s3:REST.PUT.OBJECT, not an IAM action."""
    assert "s3:REST.PUT.OBJECT" in _listed("AWS::Logs::LogGroup", "update")
    found = handler_permissions("AWS::Logs::LogGroup", Handler.UPDATE)
    assert found is not None
    assert "s3:REST.PUT.OBJECT" not in found
    assert "logs:PutRetentionPolicy" in found


def test_no_schema_no_handler() -> None:
    assert handler_permissions("Custom::Seed", Handler.UPDATE) is None
    assert handler_permissions("AWS::Lambda::Permission", Handler.UPDATE) is None


def test_template_types_group_the_logical_ids() -> None:
    assert template_types(TEMPLATE) == {
        "AWS::Lambda::Function": ("HelloLambdaFunction", "OtherLambdaFunction"),
        "AWS::Logs::LogGroup": ("HelloLogGroup",),
        "Custom::Seed": ("Seed",),
    }
    assert template_types(None) == {}
    assert template_types({"Resources": "nonsense"}) == {}


@pytest.mark.parametrize(
    ("name", "done", "handlers"),
    [
        ("no remove passed: delete handlers too", Exercised(True, False), {"update", "delete"}),
        ("a remove passed: update handlers only", Exercised(True, True), {"update"}),
    ],
)
def test_what_the_policy_holds_is_never_listed(
    name: str, done: Exercised, handlers: set[str]
) -> None:
    policy = _policy("lambda:UpdateFunctionCode", "lambda:DeleteFunction", "lambda:GetFunction")
    items = not_exercised(template_types(TEMPLATE), policy, done)
    assert {i.handler.value for i in items} == handlers, name
    for item in items:
        assert not set(item.actions) & set(policy.actions)
    function = next(
        i
        for i in items
        if i.resource_type == "AWS::Lambda::Function" and i.handler.value == "update"
    )
    assert "lambda:UpdateFunctionConfiguration" in function.actions
    assert function.logical_ids == ("HelloLambdaFunction", "OtherLambdaFunction")


def _runs(*steps: tuple[str, str, int]) -> list[Event]:
    events: list[Event] = []
    for number, (phase, step, returncode) in enumerate(steps, start=1):
        events.append(PhaseStarted(phase, step, number))
        events.append(RunStarted(number))
        events.append(RunFinished(number, returncode, 1.0, False))
    return events


@pytest.mark.parametrize(
    ("name", "steps", "done"),
    [
        ("create only", [("create", "create", 0)], Exercised(False, False)),
        (
            "all phases passed",
            [
                ("create", "create", 0),
                ("update", "update", 0),
                ("update", "no-op update", 0),
                ("remove", "remove", 0),
            ],
            Exercised(True, True),
        ),
        (
            "the remove was denied",
            [("create", "create", 0), ("update", "update", 0), ("remove", "remove", 1)],
            Exercised(True, False),
        ),
        ("a journal without phases", [], Exercised(False, False)),
    ],
)
def test_what_the_journal_shows_was_exercised(
    name: str, steps: list[tuple[str, str, int]], done: Exercised
) -> None:
    assert exercised(_runs(*steps)) == done, name


def test_the_section_names_each_type_and_what_it_lacks() -> None:
    lines = render_section(template_types(TEMPLATE), _policy(), Exercised(False, False))
    text = "\n".join(lines)
    assert lines[0] == "## Not exercised"
    assert "never granted" in text
    assert "no remove phase passed" in text
    assert "No registry schema: `Custom::Seed`" in text
    assert "| `AWS::Logs::LogGroup` | `HelloLogGroup` | update |" in text
    assert (
        "| `AWS::Lambda::Function` | `HelloLambdaFunction`, `OtherLambdaFunction` | delete |"
        in (text)
    )
    assert render_section({}, _policy(), Exercised(True, True)) == []


def test_the_report_lists_them_and_the_policy_stays_as_it_was() -> None:
    """The section is in the report; the policy the report shows has nothing of it."""
    events = _runs(("create", "create", 0))
    without = render_report(events)
    report = render_report(events, TEMPLATE)
    assert "## Not exercised" not in without
    assert "## Not exercised" in report
    assert "`lambda:UpdateFunctionConfiguration`" in report
    policy_of = lambda text: text.split("## Policy", 1)[1].split("\n## ", 1)[0]  # noqa: E731
    assert policy_of(report) == policy_of(without)
    assert "UpdateFunctionConfiguration" not in policy_of(report)
