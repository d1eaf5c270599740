"""The service's CloudFormation template, obtained without credentials, and what the CLI derives.

``serverless package`` compiles ``serverless.yml`` into the templates the deploy will send
(``cloudformation-template-create-stack.json``: the deployment bucket alone, created first;
``cloudformation-template-update-stack.json``: the whole service) and records what it
derived (``serverless-state.json``: service, stage, region, the artifact folder). It needs no
AWS credentials for a plain service; discover runs it as a real subprocess with every AWS
identity removed from its environment, writing into a scratch folder (``--package DIR``), so
the user's folder is left as it was. Other tools: ``--template FILE``.

The model keeps, per resource, its logical id, type, properties and physical name: the name
the template gives (``FunctionName``, intrinsic functions of pseudo parameters resolved), or
the one CloudFormation generates (``STACK-LOGICALID-SUFFIX``, lowercase for buckets), with a
stand-in suffix that the scoping rules recognise as generated and turn into ``*``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources as package_data
from pathlib import Path
from typing import Any

from discover.errors import DiscoverError
from discover.tools import (
    SAM_BUCKET_LOGICAL_ID,
    SAM_MANAGED_STACK,
    SAM_TRANSFORM,
    sam_template_of,
)

CREATE_TEMPLATE = "cloudformation-template-create-stack.json"
UPDATE_TEMPLATE = "cloudformation-template-update-stack.json"
STATE_FILE = "serverless-state.json"
DEPLOYMENT_BUCKET_LOGICAL_ID = "ServerlessDeploymentBucket"
# Stand-ins for what CloudFormation generates on create: a suffix of a generated name, an id.
GENERATED_SUFFIX = "1A2B3C4D5E6F7"
GENERATED_ID = "a1b2c3d4e5"
GENERATED_UUID = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0"
_PACKAGE_TIMEOUT_S = 600.0


class TemplateError(DiscoverError):
    """The template cannot be obtained or read."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Resource:
    """One template resource: logical id, type, properties, and its physical name."""

    logical_id: str
    type: str
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    name: str | None = None  # None: the resource has no name (an API's id is generated)
    name_generated: bool = False


@dataclass(frozen=True, slots=True)
class ServiceTemplate:
    """What the deploy will create, as the CLI derives it."""

    service: str
    stage: str
    region: str
    account: str
    stack_name: str
    resources: tuple[Resource, ...]
    artifact_prefix: str | None = None  # "serverless/SERVICE/STAGE/": where uploads go
    deployment_bucket: str | None = None  # its logical id, or the name the user configured
    partition: str = "aws"
    # The stack's own tags: CloudFormation propagates them to every taggable resource, with
    # the caller's tagging permissions.
    stack_tags: tuple[tuple[str, str], ...] = ()
    # The stacks the CLI deploys for itself with the caller's credentials (SAM's artifact
    # stack): predicted with the service's, since a first deploy creates them.
    managed: tuple[ServiceTemplate, ...] = ()

    def resource(self, logical_id: str) -> Resource | None:
        return next((r for r in self.resources if r.logical_id == logical_id), None)

    @property
    def deployment_bucket_name(self) -> str | None:
        if self.deployment_bucket is None:
            return None
        resource = self.resource(self.deployment_bucket)
        return resource.name if resource is not None else self.deployment_bucket

    def function_name(self, function: str) -> str:
        """The name the Serverless CLI gives a function: ``SERVICE-STAGE-FUNCTION``."""
        return f"{self.service}-{self.stage}-{function}"

    def log_group(self, function: str) -> str:
        return f"/aws/lambda/{self.function_name(function)}"


# --- schemas ----------------------------------------------------------------------------------


@cache
def schema(resource_type: str, region: str = "us-east-1") -> Mapping[str, Any] | None:
    """The CloudFormation registry schema of ``resource_type``, as cfn-lint ships it."""
    from importlib import resources

    root = Path(str(resources.files("cfnlint"))) / "data" / "schemas"
    index_path = root / "providers" / f"{region}.json"
    if not index_path.exists():
        index_path = root / "providers" / "us-east-1.json"
    index = _read_json(index_path)
    digest = index.get(resource_type) if isinstance(index, dict) else None
    if not isinstance(digest, str):
        return None
    found = _read_json(root / "resources" / f"{digest}.json")
    return found if isinstance(found, dict) else None


@cache
def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def name_property(resource_type: str) -> str | None:
    """The property that names a resource of this type (``FunctionName``, ``QueueName``)."""
    found = schema(resource_type)
    if found is None:
        return None
    read_only = {str(p).removeprefix("/properties/") for p in found.get("readOnlyProperties", [])}
    properties = {k: v for k, v in found.get("properties", {}).items() if k not in read_only}
    for identifier in found.get("primaryIdentifier", []):
        prop = str(identifier).removeprefix("/properties/")
        if prop.endswith("Name") and prop in properties:
            return prop
    noun = resource_type.rsplit("::", 1)[-1]
    for candidate in (f"{noun}Name", "Name"):
        if candidate in properties:
            return candidate
    return None


# --- intrinsic functions of pseudo parameters --------------------------------------------------


def _pseudo(template: ServiceTemplateParts, name: str) -> str | None:
    return {
        "AWS::Region": template.region,
        "AWS::AccountId": template.account,
        "AWS::StackName": template.stack_name,
        "AWS::Partition": template.partition,
        "AWS::URLSuffix": "amazonaws.com",
    }.get(name)


@dataclass(frozen=True, slots=True)
class ServiceTemplateParts:
    region: str
    account: str
    stack_name: str
    partition: str = "aws"


def resolve_text(value: Any, parts: ServiceTemplateParts) -> str | None:  # noqa: PLR0911 - one return per intrinsic
    """A property value as text, when only pseudo parameters stand in its way; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, Mapping) or len(value) != 1:
        return None
    ((key, arg),) = value.items()
    if key == "Ref" and isinstance(arg, str):
        return _pseudo(parts, arg)
    if key == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
        separator, items = arg
        if not isinstance(separator, str) or not isinstance(items, list):
            return None
        texts = [resolve_text(item, parts) for item in items]
        return None if any(t is None for t in texts) else separator.join(str(t) for t in texts)
    if key == "Fn::Sub" and isinstance(arg, str):
        unresolved = False

        def one(match: re.Match[str]) -> str:
            nonlocal unresolved
            found = _pseudo(parts, match.group(1))
            if found is None:
                unresolved = True
                return ""
            return found

        text = re.sub(r"\$\{([^!}][^}]*)\}", one, arg)
        return None if unresolved else text
    return None


def generated_name(stack_name: str, logical_id: str, resource_type: str) -> str:
    """The name CloudFormation gives a resource the template leaves unnamed."""
    name = f"{stack_name}-{logical_id}-{GENERATED_SUFFIX}"
    # NOTE: bucket names are lowercase; CloudFormation lowercases the whole generated name.
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-s3-bucket.html
    return name.lower() if resource_type == "AWS::S3::Bucket" else name


def _resources(raw: Mapping[str, Any], parts: ServiceTemplateParts) -> tuple[Resource, ...]:
    found: list[Resource] = []
    for logical_id, body in raw.items():
        if not isinstance(body, Mapping) or not isinstance(body.get("Type"), str):
            msg = f"template resource {logical_id!r} has no Type"
            raise TemplateError(msg)
        resource_type = str(body["Type"])
        props = body.get("Properties") or {}
        if not isinstance(props, Mapping):
            props = {}
        prop = name_property(resource_type)
        name: str | None = None
        generated = False
        if prop is not None:
            name = resolve_text(props.get(prop), parts) if props.get(prop) else None
            if name is None and props.get(prop) is None:
                name, generated = generated_name(parts.stack_name, logical_id, resource_type), True
        found.append(Resource(str(logical_id), resource_type, dict(props), name, generated))
    return tuple(found)


def load_template(
    path: Path,
    *,
    service: str,
    stage: str,
    region: str,
    account: str,
    stack_name: str,
    state: Path | None = None,
) -> ServiceTemplate:
    """Read a CloudFormation template (JSON or YAML) and, when given, the CLI's state file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot read the template ({exc.strerror})"
        raise TemplateError(msg, tip="Pass --template FILE with the stack's template.") from exc
    try:
        document = json.loads(text)
    except ValueError:
        document = _yaml(text, path)
    if isinstance(document, dict) and _declares_sam(document):
        document = expand_sam(
            document, path=path, region=region, account=account, stack_name=stack_name
        )
    resources = document.get("Resources") if isinstance(document, Mapping) else None
    if not isinstance(resources, Mapping) or not resources:
        msg = f"{path}: not a CloudFormation template (no Resources)"
        raise TemplateError(msg, tip="Pass --template FILE with the stack's template.")
    parts = ServiceTemplateParts(region, account, stack_name)
    prefix: str | None = None
    bucket: str | None = (
        DEPLOYMENT_BUCKET_LOGICAL_ID if DEPLOYMENT_BUCKET_LOGICAL_ID in resources else None
    )
    tags: tuple[tuple[str, str], ...] = ()
    if state is not None and state.exists():
        prefix, configured = _from_state(state, service, stage)
        bucket = configured or bucket
        tags = _stack_tags(state, stage)
    return ServiceTemplate(
        service=service,
        stage=stage,
        region=region,
        account=account,
        stack_name=stack_name,
        resources=_resources(resources, parts),
        artifact_prefix=prefix,
        deployment_bucket=bucket,
        stack_tags=tags,
    )


def _declares_sam(document: Mapping[str, Any]) -> bool:
    transform = document.get("Transform")
    names = transform if isinstance(transform, list) else [transform]
    return SAM_TRANSFORM in names


def expand_sam(
    document: dict[str, Any], *, path: Path, region: str, account: str, stack_name: str
) -> dict[str, Any]:
    """A SAM template as CloudFormation processes it: the SAM translator's output (the library
    the hosted transform is built on), read offline with the managed policies it bundles.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/transform-aws-serverless.html
    """
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    document = _as_packaged(document, stack_name)
    values = {"AWS::Region": region, "AWS::AccountId": account, "AWS::StackName": stack_name}
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    try:
        processed: dict[str, Any] = translator.translate(
            document, parameter_values=values, get_managed_policy_map=dict
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(c) for c in exc.causes)[:300]
        msg = f"{path}: the SAM transform refuses it ({causes or exc})"
        raise TemplateError(msg, tip="sam validate says more.") from None
    return processed


# The local paths ``sam deploy`` uploads before the transform sees the template, by type.
_SAM_LOCAL_PATHS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


def _as_packaged(document: dict[str, Any], stack_name: str) -> dict[str, Any]:
    """The template as ``sam deploy`` hands it over: local paths replaced by the S3 URIs of
    the uploads (``STACK/MD5`` in the managed stack's bucket, whose name CloudFormation made)."""
    out: dict[str, Any] = json.loads(json.dumps(document))
    bucket = generated_name(SAM_MANAGED_STACK, SAM_BUCKET_LOGICAL_ID, "AWS::S3::Bucket")

    def package(properties: Any, key: str, logical_id: str) -> None:
        if isinstance(properties, dict):
            value = properties.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                digest = hashlib.md5(logical_id.encode(), usedforsecurity=False).hexdigest()
                properties[key] = f"s3://{bucket}/{stack_name}/{digest}"

    globals_ = out.get("Globals")
    if isinstance(globals_, dict):
        package(globals_.get("Function"), "CodeUri", "globals")
    resources = out.get("Resources")
    for logical_id, body in resources.items() if isinstance(resources, dict) else ():
        key = _SAM_LOCAL_PATHS.get(str(body.get("Type"))) if isinstance(body, dict) else None
        if key is not None:
            package(body.get("Properties"), key, str(logical_id))
    return out


def read_sam(path: Path, *, region: str, account: str, stack_name: str) -> dict[str, Any]:
    """The SAM template at ``path``, expanded (raises ``TemplateError`` when it cannot be)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot read the template ({exc.strerror})"
        raise TemplateError(msg) from exc
    try:
        document = json.loads(text)
    except ValueError:
        document = _yaml(text, path)
    if not isinstance(document, dict):
        msg = f"{path}: not a SAM template"
        raise TemplateError(msg)
    return expand_sam(document, path=path, region=region, account=account, stack_name=stack_name)


def with_sam_managed_stack(template: ServiceTemplate) -> ServiceTemplate:
    """``template`` deployed by ``sam deploy --resolve-s3``: its artifacts go under
    ``STACK/`` in the bucket of SAM's managed stack, which the first deploy creates."""
    import dataclasses

    raw = json.loads(
        (package_data.files("discover") / "data" / "sam-managed-stack.json").read_text("utf-8")
    )
    parts = ServiceTemplateParts(template.region, template.account, SAM_MANAGED_STACK)
    managed = ServiceTemplate(
        service=SAM_MANAGED_STACK,
        stage=template.stage,
        region=template.region,
        account=template.account,
        stack_name=SAM_MANAGED_STACK,
        resources=_resources(raw["Resources"], parts),
        partition=template.partition,
    )
    bucket = managed.resource(SAM_BUCKET_LOGICAL_ID)
    return dataclasses.replace(
        template,
        managed=(managed,),
        deployment_bucket=bucket.name if bucket is not None else None,
        artifact_prefix=f"{template.stack_name}/",
    )


def load_cfn_yaml(text: str) -> Any:
    """YAML with CloudFormation's short-form intrinsics as their long forms (``!Ref X`` ->
    ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": [A, B]}``), as the CLIs read it;
    raises ``yaml.YAMLError``."""
    import yaml

    class _Loader(yaml.SafeLoader):
        """A SafeLoader that knows the short forms."""

    def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    _Loader.add_multi_constructor("!", _tag)
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        return load_cfn_yaml(text)
    except yaml.YAMLError as exc:
        msg = f"{path}: neither JSON nor YAML ({' '.join(str(exc).split())[:200]})"
        raise TemplateError(msg) from exc


def service_of_state(state: Path) -> str | None:
    """The service name the CLI resolved (``service:`` may hold variables)."""
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    service = (data.get("service") or {}).get("service") if isinstance(data, Mapping) else None
    if isinstance(service, Mapping):
        service = service.get("name")
    return service if isinstance(service, str) else None


def _stack_tags(state: Path, stage: str) -> tuple[tuple[str, str], ...]:
    """The tags the Serverless CLI puts on its stack: ``STAGE``, and ``provider.stackTags``.

    NOTE: osls lib/plugins/aws/lib/get-shared-stack-action-params.js tags every stack it
    creates or updates with ``STAGE: <stage>`` merged with ``provider.stackTags``.
    """
    tags = {"STAGE": stage}
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
        extra = (data.get("service") or {}).get("provider", {}).get("stackTags") or {}
    except (OSError, ValueError, AttributeError):
        extra = {}
    if isinstance(extra, Mapping):
        lowered = {str(k).lower() for k in extra}
        tags = {k: v for k, v in tags.items() if k.lower() not in lowered}
        tags.update({str(k): str(v) for k, v in extra.items()})
    return tuple(sorted(tags.items()))


def _from_state(state: Path, service: str, stage: str) -> tuple[str | None, str | None]:
    """The artifact folder's stable prefix and a configured deployment bucket, if any."""
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    package = data.get("package") if isinstance(data, Mapping) else None
    directory = package.get("artifactDirectoryName") if isinstance(package, Mapping) else None
    prefix = None
    if isinstance(directory, str) and directory.count("/") >= 3:
        prefix = directory.rsplit("/", 1)[0] + "/"  # drop the build folder (a timestamp)
    elif service and stage:
        prefix = f"serverless/{service}/{stage}/"
    provider = (data.get("service") or {}).get("provider") or {}
    bucket = provider.get("deploymentBucket") if isinstance(provider, Mapping) else None
    if isinstance(bucket, Mapping):
        bucket = bucket.get("name")
    return prefix, bucket if isinstance(bucket, str) and "${" not in bucket else None


# --- serverless package -----------------------------------------------------------------------


def package_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``serverless package`` runs in: no AWS identity, no shared files."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            # The CLI's usage reporting and update checks are not for a packaging step.
            "SLS_TELEMETRY_DISABLED": "1",
            "SLS_NOTIFICATIONS_MODE": "off",
        }
    )
    return env


class _NoStackHandler(BaseHTTPRequestHandler):
    """AWS as a packaging step may see it: no stack yet, and nothing else allowed.

    The Serverless CLI asks CloudFormation for the stack while it packages a layer (to reuse
    the last upload when the layer did not change); discover predicts the deploy from no
    stack, so the truthful answer is CloudFormation's own missing-stack error. Any other call
    is refused: packaging holds no identity.
    """

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if b"Action=DescribeStacks" in body:
            self._error(400, "ValidationError", "Stack with id offline does not exist")
        else:
            self._error(403, "AccessDenied", "packaging runs without AWS credentials")

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST  # noqa: N815 - http.server's names

    def _error(self, status: int, code: str, message: str) -> None:
        text = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def _offline_aws() -> Iterator[dict[str, str]]:
    """Environment for a packaging step: placeholder keys, and an endpoint on loopback that
    answers as :class:`_NoStackHandler` (never a real AWS endpoint, never a real identity)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoStackHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "AWS_ACCESS_KEY_ID": "AKIAPACKAGEOFFLINE00",
            "AWS_SECRET_ACCESS_KEY": "packaging-holds-no-identity",  # a placeholder
        }
    finally:
        server.shutdown()
        server.server_close()


def package_serverless(
    service_dir: Path,
    cli: Sequence[str],
    *,
    stage: str,
    region: str,
    out_dir: Path,
    timeout_s: float = _PACKAGE_TIMEOUT_S,
) -> Path:
    """Run ``CLI package`` into ``out_dir`` without credentials; the update template's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [*cli, "package", "--stage", stage, "--region", region, "--package", str(out_dir)]
    try:
        with _offline_aws() as offline:
            done = subprocess.run(
                argv,
                cwd=service_dir,
                env={**package_env(), **offline},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
    except FileNotFoundError as exc:
        msg = f"cannot package the service: {cli[0]} not found"
        raise TemplateError(msg, tip="Pass --cli PATH, or --template FILE.") from exc
    except subprocess.TimeoutExpired as exc:
        msg = f"serverless package did not finish in {timeout_s:.0f} s"
        raise TemplateError(msg, tip="Pass --template FILE with the stack's template.") from exc
    template = out_dir / UPDATE_TEMPLATE
    if done.returncode != 0 or not template.exists():
        tail = done.stdout.decode("utf-8", "replace").strip().splitlines()[-3:]
        msg = f"serverless package failed (exit {done.returncode}): {' / '.join(tail)[:300]}"
        raise TemplateError(
            msg,
            tip="A service whose variables need AWS to resolve cannot be packaged offline: "
            "pass --template FILE, or --strategy observed.",
        )
    return template


def serverless_template(
    service_dir: Path,
    cli: Sequence[str],
    *,
    service: str | None,
    stage: str,
    region: str,
    account: str,
    stack_name: str,
) -> ServiceTemplate:
    """Package the service into a scratch folder and read what it will deploy."""
    scratch = Path(tempfile.mkdtemp(prefix="discover-package-"))
    try:
        path = package_serverless(service_dir, cli, stage=stage, region=region, out_dir=scratch)
        state = scratch / STATE_FILE
        return load_template(
            path,
            service=service or service_of_state(state) or stack_name,
            stage=stage,
            region=region,
            account=account,
            stack_name=stack_name,
            state=state,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """The ``Template`` port: ``--template FILE``, or the service packaged by its CLI."""

    service_dir: Path
    cli: tuple[str, ...]
    stage: str
    region: str
    account: str
    stack_name: str
    template: Path | None = None
    service: str | None = None

    def load(self) -> ServiceTemplate:
        sam = None if self.template else sam_template_of(self.service_dir)
        if sam is not None:
            return with_sam_managed_stack(
                load_template(
                    sam,
                    service=self.service or self.stack_name,
                    stage=self.stage,
                    region=self.region,
                    account=self.account,
                    stack_name=self.stack_name,
                )
            )
        if self.template is not None:
            return load_template(
                self.template,
                service=self.service or self.stack_name,
                stage=self.stage,
                region=self.region,
                account=self.account,
                stack_name=self.stack_name,
            )
        return serverless_template(
            self.service_dir,
            self.cli,
            service=self.service,
            stage=self.stage,
            region=self.region,
            account=self.account,
            stack_name=self.stack_name,
        )
