"""The fence: the resources a service owns, known before anything is granted.

A grant inside the fence is made without asking; outside it, a person confirms it. The fence
is built from plain data, so any template reader can feed it:

- the service's stack (``stack/NAME/*``);
- the resources of its CloudFormation template: their physical names where the template
  sets them (``FunctionName``, ``RoleName``, ``BucketName``, ... resolved over ``Ref``,
  ``Fn::Join`` and ``Fn::Sub`` of the pseudo parameters), and, for the names CloudFormation
  generates, the ``STACK-`` prefix it gives them;
- the names the CLI derives: ``SERVICE-STAGE-*`` (the Serverless CLI names functions, roles
  and log groups so);
- its deployment bucket;
- actions for which IAM defines no resource type (they take only ``*``).

A resource is matched by the ARN format of the action's resource type (the IAM data): the
account must be the sandbox account (or absent, as in S3), the region the service's (or
absent, as in IAM), and the resource's first name must be one the service owns. Resources
keyed by a generated id (an API Gateway ``/restapis/ID``) have no name to check: they are
inside when the template creates resources of that service, since the ids are not known
before the deploy makes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from discover import iamdb
from discover.iamdb import Action

PACKAGED_TEMPLATE = Path(".serverless") / "cloudformation-template-update-stack.json"
_LOCATION = frozenset({"Partition", "Region", "Account"})
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
_HOSTED_TRANSFORM = re.compile(
    r"arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:aws:transform/[A-Za-z0-9-]+"
)
# IAM resource types whose writes the decision treats as identity writes.
IAM_IDENTITY_KINDS = frozenset({"role", "user", "group", "policy"})
_IAM_NAME_PROPERTIES = {
    "AWS::IAM::Role": ("role", "RoleName"),
    "AWS::IAM::User": ("user", "UserName"),
    "AWS::IAM::Group": ("group", "GroupName"),
    "AWS::IAM::ManagedPolicy": ("policy", "ManagedPolicyName"),
}


@dataclass(frozen=True, slots=True)
class TemplateResource:
    """One resource of the template: its logical id, type, and physical name if it sets one."""

    logical_id: str
    resource_type: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Fence:
    """What the service owns; ``contains`` says whether a grant stays inside it."""

    stack_name: str
    region: str
    account: str
    partition: str = "aws"
    prefixes: tuple[str, ...] = ()
    names: frozenset[str] = frozenset()
    resources: tuple[TemplateResource, ...] = ()
    has_template: bool = False
    deployment_bucket: str | None = None

    # --- membership ---------------------------------------------------------------------

    def owns_name(self, name: str, *, case_insensitive: bool = False) -> bool:
        """True when ``name`` (a pattern's literal text) is one of the service's names."""

        def fold(text: str) -> str:
            return text.casefold() if case_insensitive else text

        folded = fold(name)
        if any(folded == fold(n) for n in self.names):
            return True
        return any(folded.startswith(fold(p)) and len(name) > len(p) for p in self.prefixes)

    def template_services(self) -> frozenset[str]:
        """The services whose resources the template creates (``AWS::Lambda::X`` -> lambda)."""
        found = set()
        for resource in self.resources:
            parts = resource.resource_type.split("::")
            if len(parts) == 3 and parts[0] == "AWS":
                found.add(parts[1].lower())
        return frozenset(found)

    def creates_iam(self, kind: str, name: str) -> bool:
        """True when the template creates the IAM ``kind`` (role, user, ...) called ``name``.

        Without a template, the names the CLI derives stand in for it. A name CloudFormation
        generates (no name property) starts with the stack's name.
        """
        if not self.has_template:
            return self.owns_name(name)
        for resource in self.resources:
            spec = _IAM_NAME_PROPERTIES.get(resource.resource_type)
            if spec is None or spec[0] != kind:
                continue
            if resource.name is not None and resource.name == name:
                return True
            if resource.name is None and name.startswith(f"{self.stack_name}-") and name:
                return True
        return False

    def contains(self, action: Action, resource: str) -> bool:
        """True when ``action`` on ``resource`` (an ARN pattern) is the service's own."""
        return self.outside(action, resource) is None

    def outside(self, action: Action, resource: str) -> str | None:  # noqa: PLR0911 - one return per rule
        """Why ``action`` on ``resource`` is outside the fence; None when it is inside."""
        types = iamdb.resource_types(action)
        if not types:
            return None
        if resource == "*":
            return "every resource (*), for an action IAM can scope"
        if _HOSTED_TRANSFORM.fullmatch(resource) and action.lower().startswith("cloudformation:"):
            # NOTE: a template declaring an AWS-hosted transform (AWS::Serverless-2016-10-31)
            # needs CreateChangeSet on arn:aws:cloudformation:REGION:aws:transform/NAME, a
            # macro AWS owns: it is no one's resource to protect.
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/transform-aws-serverless.html
            return None
        located = locate(action, resource)
        if located is None:
            return "a resource that fits none of the action's ARN formats"
        service, account, region, name = located
        if account is not None and account != self.account:
            return f"a resource in account {account or '(none)'}, not {self.account}"
        if region is not None and region not in ("", self.region):
            return f"a resource in region {region}, not {self.region}"
        if name is None:
            if service in self.template_services() or any(
                s.startswith(service) for s in self.template_services()
            ):
                return None
            return f"a {service} resource, and the template creates no {service} resources"
        inner = unquote(name)
        if inner.startswith("arn:") and inner != resource:
            # A resource named by another's ARN (API Gateway's /tags/URL-ENCODED-ARN): it is
            # the service's when that resource is.
            return self.outside(action, inner)
        candidates = name_candidates(name)
        if any(self.owns_name(c, case_insensitive=service == "s3") for c in candidates):
            return None
        return f"{_printable(candidates[0])!r} is not a name the service owns"

    # --- what the fence is, for the report ----------------------------------------------

    def describe(self) -> list[str]:
        """The fence in a few lines, for the review report."""
        lines = [
            f"stack {self.stack_name} in {self.region}, account {self.account}",
            "names starting with " + ", ".join(self.prefixes)
            if self.prefixes
            else "no derived name prefix",
        ]
        if self.deployment_bucket:
            lines.append(f"deployment bucket {self.deployment_bucket}")
        named = sorted(r.name for r in self.resources if r.name)
        if self.has_template:
            lines.append(
                f"the template's {len(self.resources)} resource(s)"
                + (": " + ", ".join(named) if named else "")
            )
        else:
            lines.append("no template read: stack name, derived names and bucket only")
        lines.append("actions IAM gives no resource type")
        return lines

    def derive(self, action: Action) -> tuple[str, ...]:
        """The ARNs of the template's resources ``action`` can act on (for a ``*`` resource).

        A template resource counts when its service is the resource type's and its physical
        name fills the type's one name placeholder (``FunctionName`` for ``function``).
        """
        arns: list[str] = []
        for rt in iamdb.resource_types(action):
            for resource in self.resources:
                if resource.name is None:
                    continue
                parts = resource.resource_type.split("::")
                if len(parts) != 3 or parts[1].lower() != rt.service:
                    continue
                for arn_format in rt.arn_formats:
                    arn = self._fill(arn_format, parts[2], resource.name)
                    if arn is not None:
                        arns.append(arn)
        return tuple(sorted(set(arns)))

    def _fill(self, arn_format: str, type_name: str, name: str) -> str | None:
        values = {"Partition": self.partition, "Region": self.region, "Account": self.account}
        placeholders = re.findall(r"\$\{([A-Za-z0-9]+)\}", arn_format)
        names = [p for p in placeholders if p not in _LOCATION]
        if len(names) != 1 or names[0] not in {f"{type_name}Name", f"{type_name}NameWithPath"}:
            return None
        values[names[0]] = name
        return re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda m: values[m.group(1)], arn_format)


def locate(action: Action, arn: str) -> tuple[str, str | None, str | None, str | None] | None:
    """(service, account, region, first name) of ``arn`` per the action's ARN formats.

    ``account`` and ``region`` are None when the format has no such field; ``name`` is None
    when the resource is keyed by a generated id or is a collection (``/restapis``).
    """
    own = iamdb.resource_types(action)
    # NOTE: the IAM data does not list every resource type an action is checked on (API
    # Gateway checks apigateway:POST on /apis, a type the data gives only to other actions):
    # the resource AWS named is located among its service's types when the action's miss it.
    keys = {rt.key for rt in own}
    service = action.split(":", 1)[0]
    others = tuple(rt for rt in iamdb.resource_types_of_service(service) if rt.key not in keys)
    for rt in (*own, *others):
        found = rt.matching_format(arn)
        if found is None:
            continue
        _, match = found
        groups = match.groupdict()
        account = groups.get("Account")
        region = groups.get("Region")
        name = None
        for key, value in groups.items():
            if key in _LOCATION:
                continue
            if not _is_id(key):
                name = value
            break
        return rt.service, account, region, name
    return None


def name_candidates(name: str) -> tuple[str, ...]:
    """The names a resource's name field can be owned under, the whole first.

    A name field can hold more than the name: a path (``/orders/dev/audit`` for a log group,
    whose last segment is what the CLI derives), or a sub-resource after a colon (a log
    group's ``:log-stream:NAME``, a function's ``:QUALIFIER``), which belongs to its parent.
    """
    parent = name.split(":", 1)[0]
    out: list[str] = []
    for text in (name, parent):
        for candidate in (text, text.rsplit("/", 1)[-1]):
            if candidate and candidate not in out:
                out.append(candidate)
    return tuple(out)


def _is_id(placeholder: str) -> bool:
    return placeholder.endswith(("Id", "ID"))


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


# --- building a fence ---------------------------------------------------------------------


def build_fence(
    *,
    stack_name: str,
    service: str | None,
    stage: str,
    region: str,
    account: str,
    template: Mapping[str, Any] | None = None,
    deployment_bucket: str | None = None,
    partition: str = "aws",
    managed_stacks: Iterable[str] = (),
) -> Fence:
    """The fence of one service from plain data (any template reader can supply ``template``).

    ``managed_stacks`` are the stacks the deploy CLI keeps for itself (SAM's artifact stack):
    they and the names CloudFormation generates in them are the deploy's own too.
    """
    managed = tuple(managed_stacks)
    prefixes = [f"{stack_name}-", *(f"{m}-" for m in managed)]
    if service:
        prefixes.append(f"{service}-{stage}-")
    resources = tuple(
        template_resources(template, stack_name=stack_name, region=region, account=account)
        if template
        else ()
    )
    names = {stack_name, *managed, *(r.name for r in resources if r.name)}
    if deployment_bucket:
        names.add(deployment_bucket)
    return Fence(
        stack_name=stack_name,
        region=region,
        account=account,
        partition=partition,
        prefixes=tuple(sorted(set(prefixes))),
        names=frozenset(names),
        resources=resources,
        has_template=template is not None,
        deployment_bucket=deployment_bucket,
    )


def template_resources(
    template: Mapping[str, Any], *, stack_name: str, region: str, account: str
) -> Iterable[TemplateResource]:
    """Each resource of ``template``, with the physical name it sets when it resolves."""
    pseudo = {
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }
    resources = template.get("Resources")
    if not isinstance(resources, Mapping):
        return
    for logical_id, body in sorted(resources.items()):
        if not isinstance(body, Mapping):
            continue
        resource_type = str(body.get("Type", ""))
        properties = body.get("Properties")
        name = None
        if isinstance(properties, Mapping):
            name = _name_of(resource_type, properties, pseudo)
        yield TemplateResource(str(logical_id), resource_type, name)


def _name_of(
    resource_type: str, properties: Mapping[str, Any], pseudo: Mapping[str, str]
) -> str | None:
    parts = resource_type.split("::")
    candidates = [f"{parts[-1]}Name", "Name", *_word_names(parts[-1], properties)]
    if resource_type in _IAM_NAME_PROPERTIES:
        candidates.insert(0, _IAM_NAME_PROPERTIES[resource_type][1])
    for key in candidates:
        if key in properties:
            return resolve(properties[key], pseudo)
    return None


def _word_names(type_name: str, properties: Mapping[str, Any]) -> list[str]:
    """``XName`` properties where X is the type's first or last words: a LayerVersion's
    ``LayerName``, a SubscriptionFilter's ``FilterName`` (not its ``LogGroupName``, which names
    another resource)."""
    words = re.findall(r"[A-Z][a-z0-9]*", type_name)
    stems = {"".join(words[:i]) for i in range(1, len(words))}
    stems |= {"".join(words[i:]) for i in range(1, len(words))}
    return sorted(k for k in properties if k.endswith("Name") and k[: -len("Name")] in stems)


def resolve(value: Any, pseudo: Mapping[str, str]) -> str | None:  # noqa: PLR0911 - one return per intrinsic
    """A template value as a string when only pseudo parameters feed it; else None."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping) or len(value) != 1:
        return None
    ((function, argument),) = value.items()
    if function == "Ref":
        return pseudo.get(str(argument))
    if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
        separator, items = argument
        if not isinstance(separator, str) or not isinstance(items, list):
            return None
        resolved = [resolve(item, pseudo) for item in items]
        return None if any(r is None for r in resolved) else separator.join(map(str, resolved))
    if function == "Fn::Sub":
        return _resolve_sub(argument, pseudo)
    return None


def _resolve_sub(argument: Any, pseudo: Mapping[str, str]) -> str | None:
    variables: Any = {}
    if isinstance(argument, str):
        text = argument
    elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str):
        text, variables = argument[0], argument[1]
    else:
        return None
    if not isinstance(variables, Mapping):
        return None
    known = dict(pseudo)
    for key, raw in variables.items():
        resolved = resolve(raw, pseudo)
        if resolved is None:
            return None
        known[str(key)] = resolved
    if any(v not in known for v in _SUB_VARIABLE.findall(text)):
        return None
    return _SUB_VARIABLE.sub(lambda m: known[m.group(1)], text)


def read_packaged_template(service_dir: Path) -> dict[str, Any] | None:
    """The template ``serverless package`` (or a deploy) left in the service folder, if any."""
    path = service_dir / PACKAGED_TEMPLATE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def deployment_bucket_of(definition: Mapping[str, Any]) -> str | None:
    """``provider.deploymentBucket`` (a name, or ``{name: ...}``) when serverless.yml sets it."""
    provider = definition.get("provider")
    if not isinstance(provider, Mapping):
        return None
    bucket = provider.get("deploymentBucket")
    if isinstance(bucket, Mapping):
        bucket = bucket.get("name")
    if isinstance(bucket, str) and "${" not in bucket:
        return bucket
    return None
