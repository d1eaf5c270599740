"""CloudFormation's hosted transforms: ``AWS::Serverless-2016-10-31``, expanded as AWS does.

A template that declares ``Transform: AWS::Serverless-2016-10-31`` is processed when a change
set is created from it: CloudFormation first checks that the caller may use the transform
(``cloudformation:CreateChangeSet`` on ``arn:aws:cloudformation:REGION:aws:transform/
Serverless-2016-10-31``), then runs the SAM translator (``aws-sam-translator``, the library the
transform is built on) and creates the change set from the processed template. Either failure
does not fail the ``CreateChangeSet`` call: the change set ends ``FAILED`` with the reason in
``StatusReason``, which the SAM CLI prints as ``Failed to create changeset for the stack``.

NOTE: moto 5.2.5 knows no transform: ``AWS::Serverless::*`` resources reach its parser as
unknown types and are left out of the stack, and a ``TemplateURL`` on the sandbox's own
endpoint (``http://127.0.0.1:PORT/bucket/key``) is read as bucket ``127``.
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/transform-aws-serverless.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-macros.html
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from discover.local import enforcement
from discover.local.authorize import Decision, denial_message
from discover.local.principals import Principal

SERVERLESS = "AWS::Serverless-2016-10-31"
_FAILED_TRANSFORM = "Transform {name} failed with: {reason}"


@dataclass(frozen=True, slots=True)
class Processed:
    """A template after its transforms: the body to create the change set from, or why not."""

    body: str
    failure: str | None = None


def transform_arn(region: str, name: str = SERVERLESS, partition: str = "aws") -> str:
    """The resource CloudFormation authorizes a transform on (its account is ``aws``)."""
    return f"arn:{partition}:cloudformation:{region}:aws:transform/{name.removeprefix('AWS::')}"


# --- reading templates -------------------------------------------------------------------------


class _TemplateLoader(yaml.SafeLoader):
    """YAML templates with CloudFormation's short forms (!Ref, !GetAtt, !Sub ...) as long forms."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _short_form)


def parse_template(body: str) -> dict[str, Any] | None:
    """A template body (JSON or YAML) as a dict; None when it is neither."""
    try:
        parsed = json.loads(body)
    except ValueError:
        try:
            parsed = yaml.load(body, Loader=_TemplateLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError:
            return None
    return parsed if isinstance(parsed, dict) else None


def declared_transforms(template: Mapping[str, Any]) -> tuple[str, ...]:
    """The template-level transforms, in the order CloudFormation runs them."""
    raw = template.get("Transform")
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list):
        return tuple(str(t) for t in raw if isinstance(t, str))
    return ()


# --- processing -------------------------------------------------------------------------------


def _managed_policy_map(account: str) -> dict[str, str]:
    """Managed policy names to ARNs, as the transform resolves ``Policies: [NAME]``."""
    backend = enforcement.iam_backend(account)
    return {str(p.name): str(p.arn) for p in backend.managed_policies.values()}


def expand_serverless(
    template: dict[str, Any],
    *,
    parameters: Mapping[str, str],
    region: str,
    account: str,
    stack_name: str,
) -> dict[str, Any]:
    """The SAM translator's output for ``template``; raises its ``InvalidDocumentException``."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    values: dict[str, Any] = {
        **parameters,
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::StackName": stack_name,
    }
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    processed: dict[str, Any] = translator.translate(
        template,
        parameter_values=values,
        get_managed_policy_map=lambda: _managed_policy_map(account),
    )
    return processed


def _refused(principal: Principal | None, region: str, name: str) -> str | None:
    """AWS's message when the caller may not use the transform; None when it may."""
    if principal is None:  # the sandbox's own set-up calls
        return None
    resource = transform_arn(region, name)
    verdict = enforcement.decide(
        principal,
        "cloudformation:CreateChangeSet",
        resource,
        {},
        source="transform",
        operation="CreateChangeSet",
        service="cloudformation",
    )
    if verdict.decision is Decision.ALLOWED:
        return None
    return denial_message(principal.arn, verdict.action, resource, verdict.decision)


def process(
    body: str,
    *,
    parameters: Mapping[str, str],
    region: str,
    account: str,
    stack_name: str,
    principal: Principal | None,
) -> Processed:
    """Run the template's transforms as CloudFormation does when a change set is created."""
    template = parse_template(body)
    if template is None or SERVERLESS not in declared_transforms(template):
        return Processed(body)
    refusal = _refused(principal, region, SERVERLESS)
    if refusal is not None:
        return Processed(body, refusal)
    from samtranslator.model.exceptions import InvalidDocumentException

    try:
        expanded = expand_serverless(
            template, parameters=parameters, region=region, account=account, stack_name=stack_name
        )
    except InvalidDocumentException as exc:
        # As the transform words it: the count, then each resource's error.
        parts = [str(exc.message), *(str(c.message) for c in exc.causes)]
        reason = " ".join(" ".join(parts).split())
        return Processed(body, _FAILED_TRANSFORM.format(name=SERVERLESS, reason=reason))
    return Processed(json.dumps(expanded, sort_keys=True))


# --- the hooks into moto's change sets ----------------------------------------------------------


def expanding(create_change_set: Callable[..., tuple[str, str]]) -> Callable[..., tuple[str, str]]:
    """Wrap ``CloudFormationBackend.create_change_set`` so its template is processed first."""

    def create(self: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
        body = kwargs.get("template", "")
        processed = process(
            body or "",
            parameters=kwargs.get("parameters") or {},
            region=str(self.region_name),
            account=str(self.account_id),
            stack_name=str(kwargs.get("stack_name", "")),
            principal=enforcement.current_principal(),
        )
        kwargs["template"] = processed.body
        change_set_id, stack_id = create_change_set(self, *args, **kwargs)
        if processed.failure is not None:
            change_set = self.change_sets[change_set_id]
            change_set.status = "FAILED"
            change_set.execution_status = "UNAVAILABLE"
            change_set.status_reason = processed.failure
        return change_set_id, stack_id

    return create


def template_from_s3_url(self: Any, template_url: str) -> str:
    """``CloudFormationResponse._get_stack_from_s3_url``, for path-style URLs on any endpoint."""
    from moto.s3.models import s3_backends

    url = urlparse(template_url)
    host = url.hostname or ""
    virtual_hosted = ".s3." in host or (host.endswith(".amazonaws.com") and ".s3-" in host)
    if virtual_hosted:
        bucket, key = host.split(".", 1)[0], url.path.lstrip("/")
    else:
        bucket, _, key = url.path.lstrip("/").partition("/")
    version = parse_qs(url.query).get("versionId", [None])[0]
    obj = s3_backends[self.current_account][self.partition].get_object(
        bucket, key, version_id=version
    )
    if obj is None:
        from moto.cloudformation.exceptions import ValidationError

        msg = f"S3 error: the template at {template_url} does not exist"
        raise ValidationError(message=msg)
    return str(obj.value.decode("utf-8"))
