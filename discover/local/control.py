"""The sandbox's own control endpoint, beside the AWS APIs: ``/_discover/...``.

- ``GET /_discover/clock``: ``{"now": epoch seconds, "offset": seconds advanced}``;
- ``POST /_discover/clock`` with ``{"advance": seconds}``: move the sandbox clock forward
  (sessions expire, delayed policy changes show), answers as GET;
- ``GET /_discover/propagation``, ``POST`` with ``{"delay": seconds}``: IAM's propagation delay;
- ``GET /_discover/cloudtrail``, ``POST`` with ``{"delay": seconds}``: CloudTrail's delivery delay.
- ``GET /_discover/excluded?stack=NAME``: for the resource types of the stack's template, the
  schema actions the sandbox did not check and why (``ledger.excluded_for``), so a report of a
  local run can say what AWS might still ask for.

It listens where the sandbox does (loopback).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from discover.local import cloudtrail, ledger
from discover.local.clock import CLOCK
from discover.local.propagation import LEDGER

PREFIX = "/_discover/"

_StartResponse = Callable[..., Any]
_App = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


def _reply(start_response: _StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    decoded = json.loads(raw or b"{}")
    if not isinstance(decoded, dict):
        msg = "expected a JSON object"
        raise TypeError(msg)
    return decoded


def _clock(method: str, body: dict[str, Any]) -> dict[str, Any]:
    if method == "POST":
        CLOCK.advance(float(body.get("advance", 0)))
    return {"now": CLOCK.now(), "offset": CLOCK.offset}


def _propagation(method: str, body: dict[str, Any]) -> dict[str, Any]:
    if method == "POST":
        LEDGER.configure(float(body.get("delay", 0)))
    return {"delay": LEDGER.delay}


def _stack_types(name: str) -> list[str] | None:
    """The resource types of the newest stack named ``name`` (deleted ones too), or None."""
    from moto.cloudformation.models import cloudformation_backends

    found: Any = None
    for account in list(cloudformation_backends):
        for region in list(cloudformation_backends[account]):
            backend = cloudformation_backends[account][region]
            stacks = [*backend.stacks.values(), *backend.deleted_stacks.values()]
            for stack in stacks:
                if name in (stack.name, stack.stack_id):
                    found = stack
    if found is None:
        return None
    resources = (found.template_dict or {}).get("Resources") or {}
    return sorted({str(body.get("Type")) for body in resources.values() if isinstance(body, dict)})


def _excluded(method: str, body: dict[str, Any]) -> dict[str, Any]:
    name = str(body.get("stack") or "")
    types = _stack_types(name) if name else None
    if types is None:
        msg = f"no stack named {name!r}"
        raise ValueError(msg)
    exclusions = ledger.excluded_for(types)
    return {
        "stack": name,
        "types": types,
        "excluded": [
            {
                "type": e.type_name,
                "operation": e.operation.value,
                "permission": e.permission,
                "action": e.action,
                "reason": e.why.name.lower(),
                "why": e.why.value,
            }
            for e in exclusions
        ],
    }


_ROUTES: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "clock": _clock,
    "propagation": _propagation,
    "cloudtrail": cloudtrail.control,
    "excluded": _excluded,
}


class ControlMiddleware:
    """Serves ``/_discover/...`` itself and hands every other request to moto."""

    def __init__(self, app: _App) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(PREFIX):
            return self._app(environ, start_response)
        route = _ROUTES.get(path[len(PREFIX) :].strip("/"))
        if route is None:
            return _reply(start_response, "404 Not Found", {"error": f"no such endpoint {path}"})
        method = str(environ.get("REQUEST_METHOD", "GET"))
        query = {k: v[0] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
        try:
            answer = route(method, _read_json(environ) if method == "POST" else query)
        except (ValueError, TypeError) as error:
            return _reply(start_response, "400 Bad Request", {"error": str(error)})
        return _reply(start_response, "200 OK", answer)
