"""The handler model covers every schema action of the types the services use, or says why not.

The schemas are cfn-lint's copy; a cfn-lint update that brings a permission the ledger has not
classified fails here, as does a ledger entry the schema no longer lists.
"""

from __future__ import annotations

import pytest

from discover import iamdb
from discover.local import ledger
from discover.local.handler_model import model_for
from discover.local.schemas import ALIASES, NotAnAction, Operation, iam_action, schema_of
from discover.local.stack_calls import OVERRIDES

LEDGER_TYPES = sorted(ledger.EXCLUDED)


def _unclassified(type_name: str) -> list[tuple[str, str]]:
    schema = schema_of(type_name)
    assert schema is not None, f"cfn-lint has no schema for {type_name}"
    model = model_for(type_name)
    assert model is not None
    listed = ledger.EXCLUDED[type_name]
    missing = []
    for operation in Operation:
        modelled = model.modelled(operation)
        for name in schema.permissions(operation):
            action = iam_action(name).action
            if name in listed.get(operation.value, {}):
                continue
            if action is not None and str(action) in modelled:
                continue
            missing.append((operation.value, name))
    return missing


@pytest.mark.parametrize("type_name", LEDGER_TYPES)
def test_every_schema_action_is_modelled_or_excluded(type_name: str) -> None:
    """Each (operation, permission) of the schema is checked by the model or in the ledger."""
    assert _unclassified(type_name) == []


@pytest.mark.parametrize("type_name", LEDGER_TYPES)
def test_every_ledger_entry_is_in_the_schema(type_name: str) -> None:
    """No stale entry: what the ledger excludes, the schema still lists."""
    schema = schema_of(type_name)
    assert schema is not None
    for operation, names in ledger.EXCLUDED[type_name].items():
        assert set(names) <= set(schema.permissions(Operation(operation))), operation


def test_an_unclassified_action_fails_the_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema that gains a permission nobody classified is reported, by name."""
    schema = schema_of("AWS::SQS::Queue")
    assert schema is not None
    grown = {**schema.handlers, Operation.CREATE: (*schema.handlers[Operation.CREATE], "sqs:X")}
    from dataclasses import replace

    import discover.local.schemas as schemas_module

    changed = replace(schema, handlers=grown)
    monkeypatch.setattr(
        "tests.test_local_ledger.schema_of",
        lambda name: changed if name == "AWS::SQS::Queue" else schemas_module.schema_of(name),
    )
    assert _unclassified("AWS::SQS::Queue") == [("create", "sqs:X")]


def test_the_ledger_covers_the_overridden_types() -> None:
    """Every type with hand-written overrides is in the ledger."""
    assert set(OVERRIDES) <= set(ledger.EXCLUDED)


@pytest.mark.parametrize(("written", "action"), sorted(ALIASES.items()))
def test_every_alias_names_a_real_iam_action(written: str, action: str) -> None:
    """The schema names mapped to another action map to one IAM has, and the name itself is
    not one (else no alias is needed)."""
    assert iamdb.canonical_action(action) == action
    assert iamdb.canonical_action(written) in (None, action)


@pytest.mark.parametrize(
    ("written", "action", "why"),
    [
        ("lower-case S3 name", "s3:getObject", None),
        ("S3 REST operation", "s3:REST.PUT.OBJECT", NotAnAction.S3_LOG_DELIVERY),
        ("delete of a sub-resource", "s3:DeleteBucketCors", None),
        ("wildcard", "ec2:Describe*", NotAnAction.WILDCARD),
        ("SDK version suffix", "lambda:TagResource20170331v2", None),
        ("unknown name", "evidently:GetExperiment", NotAnAction.NO_SUCH_ACTION),
    ],
)
def test_schema_names_read_as_iam_actions(
    written: str, action: str, why: NotAnAction | None
) -> None:
    """Names that are not IAM actions become the action IAM checks, or are excluded, why."""
    read = iam_action(action)
    assert read.why is why
    if why is None:
        assert read.action is not None
        assert iamdb.is_known_action(read.action)


def test_excluded_for_a_template_lists_reasons() -> None:
    """For a ledger type the ledger's entries; for another type, what its model does not make."""
    found = ledger.excluded_for(["AWS::Lambda::Function", "AWS::Cognito::UserPool"])
    kinds = {(e.type_name, e.why) for e in found}
    assert ("AWS::Lambda::Function", ledger.Why.KMS) in kinds
    assert ("AWS::Lambda::Function", ledger.Why.VPC) in kinds
    pool = [e for e in found if e.type_name == "AWS::Cognito::UserPool"]
    assert pool
    model = model_for("AWS::Cognito::UserPool")
    assert model is not None
    assert all(
        e.action not in model.modelled(e.operation)
        for e in pool
        if e.why is ledger.Why.NOT_MODELLED
    )
