"""``AWS::ApiGateway::RestApi`` declared by its ``Body``: an API imported from its definition.

CloudFormation creates a REST API whose ``Body`` holds an OpenAPI (Swagger 2.0 or OpenAPI 3)
definition by importing it: the API takes ``info.title`` as its name unless ``Name`` is given,
and gets a resource per path and a method (with its ``x-amazon-apigateway-integration``) per
operation. The AWS::Serverless transform declares every implicit API this way.

NOTE: moto 5.2.5 ``RestAPI.create_from_cloudformation_json`` reads only ``Name`` (a KeyError
without it) and ignores ``Body``; its ``put_rest_api`` walks paths as API Gateway does but
refuses Swagger 2.0 documents, which API Gateway imports.
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-apigateway-restapi.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/import-edge-optimized-api.html
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})
_ANY_METHOD = "x-amazon-apigateway-any-method"


def _definition(body: Any) -> dict[str, Any] | None:
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            import yaml

            body = yaml.safe_load(body)
    return body if isinstance(body, dict) else None


def operations_only(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition's paths with only their operations, ``ANY`` named as API Gateway does,
    in the OpenAPI 3 form moto's importer reads (its path walk is the same for Swagger 2.0)."""
    paths: dict[str, Any] = {}
    for path, item in (definition.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        operations = {m: op for m, op in item.items() if m.lower() in _HTTP_METHODS}
        if _ANY_METHOD in item:
            operations["any"] = item[_ANY_METHOD]
        paths[str(path)] = operations
    return {"openapi": "3.0.1", "info": definition.get("info") or {}, "paths": paths}


def with_body(create: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``RestAPI.create_from_cloudformation_json`` to honour ``Body``."""

    def create_from_cloudformation_json(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = dict(cloudformation_json.get("Properties") or {})
        definition = _definition(properties.get("Body"))
        if definition is None:
            return create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        title = (definition.get("info") or {}).get("title")
        properties.setdefault("Name", str(title or resource_name))
        api = create(
            resource_name,
            {**cloudformation_json, "Properties": properties},
            account_id,
            region_name,
            **kwargs,
        )
        from moto.apigateway.models import apigateway_backends

        backend = apigateway_backends[account_id][region_name]
        backend.put_rest_api(
            api.id, operations_only(definition), fail_on_warnings=False, mode="overwrite"
        )
        return api

    return classmethod(create_from_cloudformation_json)  # type: ignore[return-value]
