"""The policy for every stage, region and account: known values as parameters.

A policy discover finds names the stage it deployed (``hello-dev-hello``), the region and the
account. A pipeline deploys the same definition to ``dev``, ``staging`` and ``prod``, in other
regions and accounts; ``--portable`` writes the policy with those three as parameters, each
format in its own syntax (CloudFormation ``!Sub``, Terraform variables and data sources, the
Serverless CLI's variables), and verify fills them in for the stage it deploys.

Only values discover knows to be the stage, region or account are replaced, never a substring
that happens to match:

- an ARN's region and account fields;
- the names the Serverless CLI derives (``discover.fence``): the stack ``SERVICE-STAGE`` and
  names ``SERVICE-STAGE`` or ``SERVICE-STAGE-*`` at the start of a name or path segment
  (``function:hello-dev-hello``, ``log-group:/aws/lambda/hello-dev-hello``, the bucket
  CloudFormation names ``hello-dev-serverlessdeploymentbucket-*``, lowercase as S3 needs),
  with the region right after them (the CLI's role ``SERVICE-STAGE-REGION-lambdaRole``);
- the artifact folder of the deployment bucket, ``PREFIX/SERVICE/STAGE/...``;
- an ARN quoted URL-encoded inside another (API Gateway's ``/tags/arn%3Aaws%3A...``).

``dev`` inside ``devices-table`` stays: it is not at a name's start after ``SERVICE-``.

The placeholder form (``policy.portable.json``) is CloudFormation's ``Fn::Sub`` syntax:
``${Stage}``, ``${AWS::Region}``, ``${AWS::AccountId}``, and ``${!`` for a literal ``${``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from discover.errors import DiscoverError
from discover.policy import (
    POLICY_VERSION,
    Condition,
    PolicyDocument,
    PolicyError,
    Statement,
    condition_block,
    load_policy,
)

PORTABLE_FILE = "policy.portable.json"


class Param(str, Enum):
    """A value a policy holds as a parameter; the value is its ``Fn::Sub`` name."""

    STAGE = "Stage"
    REGION = "AWS::Region"
    ACCOUNT = "AWS::AccountId"


Part = str | Param
Text = tuple[Part, ...]
"""A string with parameters: literal parts and ``Param`` s, in order."""


class PortableError(DiscoverError):
    """A portable policy that cannot be rendered or filled in."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Where:
    """What discover knows to be the stage, region and account of its run.

    ``service`` is ``serverless.yml``'s service name: the CLI's names are built from it and
    the stage. Without it (a SAM template, a command of the user's), only the ARNs' region and
    account fields are known, and the stage is never replaced.
    """

    stage: str
    region: str
    account: str
    service: str | None = None


# --- from literal values to parameters ---------------------------------------------------------

_ARN = re.compile(r"^(arn:[^:]*:)([^:]*):([^:]*):([^:]*):(.*)$", re.DOTALL)
_ENCODED_ARN = re.compile(r"arn%3A[A-Za-z0-9%*._~-]*")
# What may follow a name the CLI derives: its end, a separator, or a wildcard.
_NAME_END = frozenset({"", "-", "/", ":", "*"})
# Name segments start at the resource part's start, or after one of these.
_SEGMENT_START = frozenset({"/", ":"})


def _merge(parts: Iterable[Part]) -> Text:
    """Adjacent literals joined, empty literals dropped."""
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, Param):
            merged.append(part)
        elif part:
            if merged and not isinstance(merged[-1], Param):
                merged[-1] = str(merged[-1]) + part
            else:
                merged.append(part)
    return tuple(merged)


def parametrise(value: str, where: Where) -> Text:
    """``value`` (an ARN pattern, or anything else) with what ``where`` knows as parameters.

    A value that is not an ARN is returned as one literal part.
    """
    match = _ARN.match(value)
    if match is None:
        return (value,) if value else ()
    head, service, region, account, resource = match.groups()
    parts: list[Part] = [f"{head}{service}:"]
    parts.append(Param.REGION if region and region == where.region else region)
    parts.append(":")
    parts.append(Param.ACCOUNT if account and account == where.account else account)
    parts.append(":")
    parts += _resource_parts(resource, service, where)
    return _merge(parts)


def _resource_parts(resource: str, service: str, where: Where) -> list[Part]:
    if service == "s3":
        bucket, slash, key = resource.partition("/")
        return [*_names(bucket, service, where), slash, *_artifact_folder(key, where)]
    parts: list[Part] = []
    at = 0
    for encoded in _ENCODED_ARN.finditer(resource):
        before = resource[at - 1] if at else ""
        parts += _names(resource[at : encoded.start()], service, where, before=before)
        parts += _encoded_arn(encoded.group(), where)
        at = encoded.end()
    parts += _names(resource[at:], service, where, before=resource[at - 1] if at else "")
    return parts


def _encoded_arn(encoded: str, where: Where) -> list[Part]:
    """An ARN quoted URL-encoded inside a resource, its parameters found as in any ARN."""
    inner = unquote(encoded)
    if _quote(inner) != encoded:
        return [encoded]  # not an encoding this model reproduces exactly: kept as it is
    return [p if isinstance(p, Param) else _quote(p) for p in parametrise(inner, where)]


def _quote(text: str) -> str:
    return quote(text, safe="*")


def _names(text: str, service: str, where: Where, *, before: str = "") -> list[Part]:
    """The CLI's names ``SERVICE-STAGE[-REGION]`` at a segment start in ``text``.

    ``before``: the character before ``text`` in the resource ("" at its start).
    """
    if where.service is None:
        return [text]
    own = f"{where.service}-{where.stage}"
    candidates = [(own, where.service + "-")]
    # S3 bucket names are lowercase: CloudFormation lowercases the stack name in the
    # bucket names it generates. Only a lowercase stage survives that as itself.
    if service == "s3" and own.lower() != own and where.stage == where.stage.lower():
        candidates.append((own.lower(), where.service.lower() + "-"))
    parts: list[Part] = []
    at = 0
    index = 0
    while index < len(text):
        previous = text[index - 1] if index else before
        segment_start = previous == "" or previous in _SEGMENT_START
        found = next(
            (c for c in candidates if segment_start and text.startswith(c[0], index)), None
        )
        if found is None or text[index + len(found[0]) : index + len(found[0]) + 1] not in (
            _NAME_END
        ):
            index += 1
            continue
        name, prefix = found
        parts += [text[at:index], prefix, Param.STAGE]
        index += len(name)
        region = f"-{where.region}-"
        if text.startswith(region, index):
            parts += ["-", Param.REGION, "-"]
            index += len(region)
        at = index
    parts.append(text[at:])
    return parts


def _artifact_folder(key: str, where: Where) -> list[Part]:
    """An object key ``PREFIX/SERVICE/STAGE/...``: the folder the CLI uploads artifacts to."""
    folders = key.split("/")
    if where.service is None or len(folders) < 3 or folders[1:3] != [where.service, where.stage]:
        return [key]
    return [f"{folders[0]}/{where.service}/", Param.STAGE, key[len("/".join(folders[:3])) :]]


# --- rendering a parametrised string ----------------------------------------------------------


def is_parametrised(text: Text) -> bool:
    return any(isinstance(part, Param) for part in text)


def render_sub(text: Text) -> str:
    """``text`` as the body of CloudFormation's ``Fn::Sub`` (a literal ``${`` as ``${!``)."""
    return "".join(
        f"${{{part.value}}}" if isinstance(part, Param) else part.replace("${", "${!")
        for part in text
    )


def render_literal(text: Text, values: Mapping[Param, str]) -> str:
    """``text`` with each parameter's value."""
    return "".join(values[part] if isinstance(part, Param) else part for part in text)


_PLACEHOLDER = re.compile(r"\$\{(!|Stage\}|AWS::Region\}|AWS::AccountId\})")


def read_sub(body: str) -> Text:
    """The parts of an ``Fn::Sub`` body this module writes (its three parameters, ``${!``)."""
    parts: list[Part] = []
    at = 0
    for match in _PLACEHOLDER.finditer(body):
        parts.append(body[at : match.start()])
        name = match.group(1)
        parts.append("${" if name == "!" else Param(name[:-1]))
        at = match.end()
    parts.append(body[at:])
    return _merge(parts)


# --- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortableStatement:
    """A statement whose resources and condition values may hold parameters."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[Text, ...]
    condition: tuple[tuple[str, str, tuple[Text, ...]], ...] = ()


def _sid(statement: Statement, resources: tuple[Text, ...]) -> str:
    """The statement's name, with a digest of its portable content: the same for every stage."""
    name = statement.sid[:-8]
    content = [statement.actions, [render_sub(r) for r in resources], statement.condition]
    digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()
    return f"{name}{digest[:8].upper()}"


def portable_statement(statement: Statement, where: Where) -> PortableStatement:
    resources = tuple(parametrise(r, where) for r in statement.resources)
    condition = tuple(
        (operator, key, tuple(parametrise(v, where) for v in values))
        for operator, key, values in statement.condition
    )
    return PortableStatement(_sid(statement, resources), statement.actions, resources, condition)


def portable_statements(policy: PolicyDocument, where: Where) -> tuple[PortableStatement, ...]:
    """``policy`` 's statements, in the same order, with what ``where`` knows as parameters."""
    return tuple(portable_statement(s, where) for s in policy.statements())


def portable_document(policy: PolicyDocument, where: Where) -> dict[str, Any]:
    """The IAM policy document with ``Fn::Sub`` placeholders (``policy.portable.json``)."""
    statements = []
    for statement in portable_statements(policy, where):
        resources = [render_sub(r) for r in statement.resources]
        rendered: dict[str, Any] = {
            "Sid": statement.sid,
            "Effect": "Allow",
            "Action": list(statement.actions),
            "Resource": resources[0] if resources == ["*"] else resources,
        }
        if statement.condition:
            rendered["Condition"] = _condition(statement.condition)
        statements.append(rendered)
    return {"Version": POLICY_VERSION, "Statement": statements}


def _condition(condition: tuple[tuple[str, str, tuple[Text, ...]], ...]) -> dict[str, Any]:
    as_text: Condition = tuple(
        (operator, key, tuple(render_sub(v) for v in values)) for operator, key, values in condition
    )
    return condition_block(as_text)


def render_portable_json(policy: PolicyDocument, where: Where) -> str:
    return json.dumps(portable_document(policy, where), indent=2) + "\n"


def parameters_used(statements: Iterable[PortableStatement]) -> frozenset[Param]:
    """The parameters the statements hold (a policy may need only some of them)."""
    return frozenset(p for text in _texts(statements) for p in text if isinstance(p, Param))


def _texts(statements: Iterable[PortableStatement]) -> Iterator[Text]:
    for statement in statements:
        yield from statement.resources
        for _operator, _key, values in statement.condition:
            yield from values


# --- filling a portable policy in --------------------------------------------------------------


def is_portable(document: object) -> bool:
    """True when ``document`` (a policy read from JSON) holds this module's placeholders."""
    return any(_PLACEHOLDER.search(s) for s in _strings(document))


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def fill_document(document: object, where: Where) -> object:
    """``document`` with every placeholder replaced by ``where`` 's value (for verify)."""
    values = {Param.STAGE: where.stage, Param.REGION: where.region, Param.ACCOUNT: where.account}

    def fill(node: object) -> object:
        if isinstance(node, str):
            return render_literal(read_sub(node), values)
        if isinstance(node, Mapping):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        return node

    return fill(document)


def read_document(path: Path) -> object:
    """The JSON at ``path`` (already read once by ``load_policy``, which names what is wrong)."""
    return json.loads(path.read_text(encoding="utf-8"))


def file_is_portable(path: Path) -> bool:
    """True when the policy file at ``path`` holds placeholders (``load_policy`` read it)."""
    load_policy(path)
    return is_portable(read_document(path))


def load_filled(path: Path, where: Where) -> PolicyDocument:
    """The policy at ``path``; a portable one with ``where`` 's stage, region and account."""
    policy = load_policy(path)
    document = read_document(path)
    if not is_portable(document):
        return policy
    try:
        return PolicyDocument.from_dict(fill_document(document, where))
    except PolicyError as exc:
        msg = f"{path}: {exc.msg}"
        raise PolicyError(msg, tip=exc.tip) from exc


def portable_note(state_dir: Path, *, json_format: bool) -> str:
    """What ``--portable`` wrote, for the command line."""
    path = state_dir / PORTABLE_FILE
    lines = [
        f"discover: portable policy: {path} (discover verify --policy FILE --stage S fills in"
        " the stage, region and account)."
    ]
    if json_format:
        lines.append(
            "discover: --format json keeps the literal stage, region and account (IAM JSON has"
            " no parameters); --format cloudformation, terraform or serverless hold them as"
            " parameters."
        )
    return "\n".join(lines)
