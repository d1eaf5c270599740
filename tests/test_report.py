"""The review report and its flags: rendered from the journal, escaped, signable."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from discover import iamdb
from discover.cli import run_main
from discover.iamdb import Action
from discover.policy import Grant, PolicyDocument
from discover.report import render_report
from discover.risks import ESCALATIONS, Kind, Severity, md_code, md_text, review_flags
from discover.run_events import Event, decode
from tests.golden import GOLDEN, JOURNALS, events, journal

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-dev-us-east-1-lambdaRole"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:demo-dev-hello"
STACK = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/demo-dev/*"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/sandbox/discover-1"
TO_LAMBDA = (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),)


def g(action: str, resource: str = "*", condition: Any = ()) -> Grant:
    return Grant(Action(action), resource, condition)


# --- the hello report ---------------------------------------------------------------------------


def test_hello_report_matches_its_golden_file() -> None:
    """The recorded hello journal renders byte for byte as fixtures/golden/hello/report.md."""
    expected = (GOLDEN / "hello" / "report.md").read_text(encoding="utf-8")
    assert render_report(events("hello")) == expected


def test_hello_report_gives_each_permission_its_run_and_message() -> None:
    """Every grant in the hello report names the run after which it came and the exact text."""
    records = journal("hello")
    report = render_report(events("hello"))
    for record in records:
        if record["event"] != "granted":
            continue
        for item in record["grants"]:
            assert "### " in report
            assert item["denial"]["message"] in report
            assert f"Granted after run {record['iteration']}," in report
    finished = [r for r in records if r["event"] == "run_finished"]
    assert f"{len(finished)} run(s)" in report
    assert "| deployed |" in report


def test_discover_report_rerenders_from_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``discover report`` writes .discover/report.md from the journal alone, and prints it."""
    state = tmp_path / ".discover"
    state.mkdir()
    shutil.copyfile(JOURNALS / "hello.jsonl", state / "journal.jsonl")
    assert run_main(["report", "--service-dir", str(tmp_path)]) == 0
    expected = (GOLDEN / "hello" / "report.md").read_text(encoding="utf-8")
    assert (state / "report.md").read_text(encoding="utf-8") == expected
    assert capsys.readouterr().out == expected


# --- flags ------------------------------------------------------------------------------------

FLAGS = [
    (
        "PassRole to Lambda and CreateFunction, on named resources",
        [g("iam:PassRole", ROLE, TO_LAMBDA), g("lambda:CreateFunction", FUNCTION)],
        [(Severity.REVIEW, Kind.ESCALATION, "lambda:CreateFunction")],
    ),
    (
        "PassRole on any role and CreateFunction",
        [g("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/*"), g("lambda:CreateFunction", FUNCTION)],
        [(Severity.HIGH, Kind.ESCALATION, "on any resource")],
    ),
    (
        "PassRole only to Lambda cannot reach CloudFormation",
        [g("iam:PassRole", ROLE, TO_LAMBDA), g("cloudformation:CreateStack", STACK)],
        [],
    ),
    (
        "change sets without PassRole run with the caller's own rights",
        [g("cloudformation:CreateChangeSet", STACK), g("cloudformation:ExecuteChangeSet", STACK)],
        [],
    ),
    (
        "PutRolePolicy on one role",
        [g("iam:PutRolePolicy", ROLE)],
        [
            (Severity.REVIEW, Kind.ESCALATION, "inline policy"),
            (Severity.REVIEW, Kind.IAM_WRITE, "iam:PutRolePolicy"),
        ],
    ),
    (
        "CreateRole without a name restriction",
        [g("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/*")],
        [
            (Severity.HIGH, Kind.ESCALATION, "no path or name restriction"),
            (Severity.HIGH, Kind.IAM_WRITE, "iam:CreateRole"),
        ],
    ),
    (
        "CreateRole restricted to the service's names",
        [g("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/demo-dev-*")],
        [(Severity.REVIEW, Kind.IAM_WRITE, "iam:CreateRole")],
    ),
    (
        "a path restricts as a name does",
        [g("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/deploy/*")],
        [(Severity.REVIEW, Kind.IAM_WRITE, "iam:CreateRole")],
    ),
    (
        "a read on * is a review, with its reason",
        [g("lambda:GetFunction")],
        [(Severity.REVIEW, Kind.WILDCARD, "could scope it to function")],
    ),
    (
        "a write on * of a typed action is high",
        [g("lambda:DeleteFunction")],
        [(Severity.HIGH, Kind.WILDCARD, "lambda:DeleteFunction")],
    ),
    (
        "a pattern whose name is a wildcard",
        [g("apigateway:DELETE", "arn:aws:apigateway:us-east-1::/restapis/*")],
        [(Severity.HIGH, Kind.WILDCARD, "every resource of this type")],
    ),
    (
        "an action with no resource type",
        [g("cloudformation:ValidateTemplate")],
        [(Severity.REVIEW, Kind.WILDCARD, "no recorded reason")],
    ),
    (
        "a resource policy write",
        [g("lambda:AddPermission", FUNCTION)],
        [(Severity.REVIEW, Kind.PERMISSIONS, "lambda:AddPermission")],
    ),
    (
        "a plain deploy policy",
        [g("s3:PutObject", "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*/*")],
        [],
    ),
]


@pytest.mark.parametrize(("name", "grants", "expected"), FLAGS)
def test_review_flags(name: str, grants: list[Grant], expected: list[tuple[Any, ...]]) -> None:
    """Escalation paths judged with their resources and conditions; wildcards with their
    reason; IAM and resource-policy writes; false positives dropped, not shown."""
    flags = review_flags(PolicyDocument(frozenset(grants)))
    assert [(f.severity, f.kind) for f in flags] == [(s, k) for s, k, _ in expected], name
    for flag, (_, _, words) in zip(flags, expected, strict=True):
        assert words in flag.text


def test_every_escalation_path_names_real_actions() -> None:
    """The escalation table is checked against the IAM data in use: no stale names."""
    for path in ESCALATIONS:
        for action in path.actions:
            assert iamdb.is_known_action(action), action


# --- a journal as real AWS would write it for hello ---------------------------------------------


def typed(records: list[dict[str, Any]]) -> list[Event]:
    """Raw journal records as the typed events the report reads (every one must decode)."""
    found = [decode(r) for r in records]
    assert None not in found
    return [e for e in found if e is not None]


def _records(grants: list[tuple[int, Grant, str, str]], *, stack: str = "demo-dev") -> list[Any]:
    """A journal: one run per grant, then a run that deploys."""
    records: list[dict[str, Any]] = [
        {
            "event": "started",
            "stack_name": stack,
            "role_arn": f"arn:aws:iam::{ACCOUNT}:role/sandbox",
            "policy_name": "discover",
            "region": "us-east-1",
            "stage": "dev",
            "command": ["serverless", "deploy"],
            "local": False,
            "max_iterations": 10,
        },
        {"event": "policy_applied", "iteration": 0, "policy": PolicyDocument().to_dict()},
    ]
    policy = PolicyDocument()
    for number, grant, source, message in grants:
        denial = {
            "action": grant.action,
            "resource": grant.resource,
            "principal": SESSION,
            "reason": "no-identity-policy",
            "source": source,
            "message": message,
        }
        policy = policy.with_grants([grant])
        records += [
            {"event": "run_started", "iteration": number},
            {
                "event": "run_finished",
                "iteration": number,
                "returncode": 1,
                "duration_s": 2.0,
                "timed_out": False,
            },
            {"event": "denials", "iteration": number, "denials": [denial]},
            {
                "event": "granted",
                "iteration": number,
                "grants": [
                    {
                        "action": grant.action,
                        "resource": grant.resource,
                        "condition": [list(c) for c in grant.condition],
                        "note": "exact role ARN",
                        "denial": denial,
                    }
                ],
                "policy": policy.to_dict(),
            },
        ]
    last = len(grants) + 1
    records += [
        {"event": "run_started", "iteration": last},
        {
            "event": "run_finished",
            "iteration": last,
            "returncode": 0,
            "duration_s": 9.5,
            "timed_out": False,
        },
        {"event": "stopped", "reason": "succeeded", "detail": f"deployed after {last} run(s)"},
    ]
    return records


def test_the_report_flags_the_escalation_path_the_policy_contains() -> None:
    """PassRole (to Lambda, on the function's role) with CreateFunction: flagged, scoped."""
    event = "HelloLambdaFunction (AWS::Lambda::Function) CREATE_FAILED: User: {s} is not "
    records = _records(
        [
            (
                1,
                g("iam:PassRole", ROLE, TO_LAMBDA),
                "stack-event",
                event.format(s=SESSION) + f"authorized to perform: iam:PassRole on {ROLE}",
            ),
            (2, g("lambda:CreateFunction", FUNCTION), "stack-event", event.format(s=SESSION)),
        ]
    )
    report = render_report(typed(records))
    reviewer = report.split("## For the reviewer", 1)[1].split("## Size", 1)[0]
    assert "**review**, privilege escalation: `iam:PassRole` + `lambda:CreateFunction`" in reviewer
    assert f"`{ROLE}` (only to `lambda.amazonaws.com`)" in reviewer
    assert "- Condition: `StringEquals iam:PassedToService = lambda.amazonaws.com`" in report
    assert "a CloudFormation stack event" in report
    assert "| 3 | 9.5 | 0 | deployed |" in report


HOSTILE = "x | y ``` <script>alert(1)</script>\n# Approved\n```\n[click](http://evil) *bold*"


def _outside_code(markdown: str) -> list[str]:
    """The lines of ``markdown`` that are not inside fenced code blocks (CommonMark rules)."""
    outside, fence = [], ""
    for line in markdown.split("\n"):
        opening = re.match(r"^(`{3,})", line)
        if fence:
            if opening and opening.group(1).startswith(fence) and not line.strip("`").strip():
                fence = ""
            continue
        if opening:
            fence = opening.group(1)
            continue
        outside.append(re.sub(r"(`+)(?:(?!\1).)*?\1", "", line))  # drop code spans
    return outside


def test_untrusted_text_cannot_change_the_report() -> None:
    """A message or stack name written to look like Markdown or HTML renders as text."""
    records = _records([(1, g("iam:GetRole", ROLE), "output", HOSTILE)], stack="demo | <b>`x`</b>")
    report = render_report(typed(records))
    assert HOSTILE in report  # verbatim, inside a fence it cannot close
    outside = "\n".join(_outside_code(report))
    assert "<script" not in outside
    assert "<b>" not in outside
    assert "# Approved" not in outside
    assert "](http://evil)" not in outside
    table_rows = [line for line in _outside_code(report) if line.startswith("| 1 |")]
    assert table_rows


@pytest.mark.parametrize(
    ("name", "text", "rendered"),
    [
        ("pipes in a table", "a|b", "`a\\|b`"),
        ("backticks inside", "a`b", "``a`b``"),
        ("a backtick at the edge", "`a", "`` `a ``"),
        ("a newline", "a\nb", "`a b`"),
    ],
)
def test_md_code_spans_cannot_be_broken(name: str, text: str, rendered: str) -> None:
    """Code spans are sized and escaped so their content stays inside them."""
    assert md_code(text, in_table=True) == rendered, name


def test_md_text_escapes_what_markdown_would_read() -> None:
    """Inline text keeps emphasis, links, HTML and pipes from taking effect."""
    assert md_text("*a* [b](c) <i> | ~d~ &amp;") == ("\\*a\\* \\[b\\](c) \\<i> \\| \\~d\\~ \\&amp;")


def test_the_report_of_an_unfinished_run_says_so() -> None:
    """A journal without a stop event (interrupted) renders, and says it did not finish."""
    records = [r for r in _records([]) if r["event"] != "stopped"]
    report = render_report(typed(records))
    assert "did not finish" in report
    assert json.loads(report.split("```json", 1)[1].split("```", 1)[0]) == {
        "Version": "2012-10-17",
        "Statement": [],
    }
