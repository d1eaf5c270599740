"""``discover diff``: what a re-discovery added or removed, for review of a policy change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from discover.cli import run_main
from discover.diff import diff_policies, render_diff
from discover.iamdb import Action
from discover.policy import Grant, PolicyDocument

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/demo-dev/*"
BUCKET = "arn:aws:s3:::demo-dev-serverlessdeploymentbucket-*"
ROLE = "arn:aws:iam::123456789012:role/demo-dev-us-east-1-lambdaRole"
TO_LAMBDA = (("StringEquals", "iam:PassedToService", ("lambda.amazonaws.com",)),)


def policy(*grants: tuple[str, str] | tuple[str, str, Any]) -> PolicyDocument:
    return PolicyDocument(frozenset(Grant(Action(g[0]), *g[1:]) for g in grants))


BASE = policy(
    ("cloudformation:CreateChangeSet", STACK),
    ("s3:PutObject", f"{BUCKET}/serverless/demo/dev/*"),
)

DIFFS = [
    (
        "the same grants",
        BASE,
        BASE,
        ["No change"],
    ),
    (
        "a new action",
        BASE,
        BASE.with_grants(policy(("iam:PassRole", ROLE, TO_LAMBDA)).grants),
        [
            "1 grant(s) added, 0 removed; 1 new action(s), 0 action(s) gone.",
            "New actions:",
            f"+ iam:PassRole on {ROLE} if StringEquals iam:PassedToService lambda.amazonaws.com",
        ],
    ),
    (
        "an action gone",
        BASE,
        policy(("cloudformation:CreateChangeSet", STACK)),
        ["Actions no longer granted:", f"- s3:PutObject on {BUCKET}/serverless/demo/dev/*"],
    ),
    (
        "a resource changed",
        BASE,
        policy(
            ("cloudformation:CreateChangeSet", STACK),
            ("s3:PutObject", f"{BUCKET}/serverless/demo/*"),
        ),
        [
            "Resources changed:",
            "  s3:PutObject",
            f"+   {BUCKET}/serverless/demo/*",
            f"-   {BUCKET}/serverless/demo/dev/*",
        ],
    ),
    (
        "a pattern under * of the same action is no change",
        policy(("lambda:GetFunction", "*")),
        policy(("lambda:GetFunction", "*"), ("lambda:GetFunction", "arn:aws:lambda:x")),
        ["No change"],
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "lines"), DIFFS)
def test_render_diff(name: str, old: PolicyDocument, new: PolicyDocument, lines: list[str]) -> None:
    """Grants are compared, grouped as new actions, gone actions and changed resources."""
    text = render_diff(diff_policies(old, new), "old.json", "new.json")
    assert text.startswith("discover diff: old.json -> new.json\n"), name
    for line in lines:
        assert line in text.splitlines() or line in text


def test_statement_layout_and_sids_are_no_change() -> None:
    """Two renderings of the same grants, merged differently by hand, compare equal."""
    merged = BASE.to_dict()
    split = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "One", "Effect": "Allow", "Action": a, "Resource": r}
            for s in merged["Statement"]
            for a in s["Action"]
            for r in s["Resource"]
        ],
    }
    assert diff_policies(BASE, PolicyDocument.from_dict(split)).unchanged


def test_discover_diff_exits_zero_and_prints_the_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``discover diff OLD NEW`` prints the changes and exits 0 whether or not there are any."""
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(BASE.render_json())
    new.write_text(policy(("cloudformation:CreateChangeSet", STACK)).render_json())
    assert run_main(["diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert f"- s3:PutObject on {BUCKET}/serverless/demo/dev/*" in out
    assert run_main(["diff", str(old), str(old)]) == 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a missing file", None, "no such file"),
        ("not JSON", "{nope", "not a JSON policy document"),
        ("not a policy", json.dumps({"Version": "2012-10-17"}), "no Statement list"),
        (
            "a Deny",
            json.dumps({"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}),
            "only Allow statements",
        ),
    ],
)
def test_discover_diff_bad_file_is_one_line(
    name: str, content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad policy file is one clear line naming the file, and exit 2."""
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(BASE.render_json())
    if content is not None:
        bad.write_text(content)
    assert run_main(["diff", str(good), str(bad)]) == 2, name
    err = capsys.readouterr().err
    assert err.startswith(f"discover: {bad}: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
