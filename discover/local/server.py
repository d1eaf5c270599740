"""The embedded AWS sandbox's server process: moto on loopback, IAM enforced, bootstrapped.

Run as ``python -m discover.local`` by :mod:`discover.local.process`. It starts moto's server on
127.0.0.1 (with the sandbox's control endpoint, ``/_discover/...``, beside it), creates an
admin user (with an access key), an empty sandbox role whose trust policy names the admin
and an empty CloudFormation service role (trusted by ``cloudformation.amazonaws.com``),
turns IAM enforcement on, prints one JSON line describing itself on stdout, and serves until
it is terminated or its stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account
ADMIN_USER = "discover-admin"
SANDBOX_ROLE = "discover-sandbox"
SERVICE_ROLE = "discover-cloudformation"
# NOTE: a CloudFormation service role is trusted by the service, which assumes it for every
# stack operation given its ARN (RoleARN) and acts with its permissions only.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html
SERVICE_ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudformation.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def _bootstrap(endpoint: str, region: str) -> dict[str, Any]:
    import boto3

    # Before enforcement is on, any key is accepted; these calls create the real admin.
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",  # noqa: S106 - moto accepts anything before enforcement
    )
    admin_arn = iam.create_user(UserName=ADMIN_USER)["User"]["Arn"]
    iam.put_user_policy(
        UserName=ADMIN_USER, PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY)
    )
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}
        ],
    }
    role_arn = iam.create_role(
        RoleName=SANDBOX_ROLE,
        AssumeRolePolicyDocument=json.dumps(trust),
        Description="discover sandbox role: starts with no permissions",
    )["Role"]["Arn"]
    service_role_arn = iam.create_role(
        RoleName=SERVICE_ROLE,
        AssumeRolePolicyDocument=json.dumps(SERVICE_ROLE_TRUST),
        Description="discover's CloudFormation service role: starts with no permissions",
    )["Role"]["Arn"]
    return {
        "admin_arn": admin_arn,
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "role_arn": role_arn,
        "service_role_arn": service_role_arn,
    }


class _Server:
    """moto's WSGI app behind the control endpoint, on a threaded werkzeug server."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        from discover.local.control import ControlMiddleware

        app = ControlMiddleware(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            host, port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


def serve(
    port: int, region: str, authorization_log: Path | None, propagation_delay: float = 0.0
) -> None:
    """Start, bootstrap, announce, and serve until stdin closes."""
    # cfn-lint (used by ValidateTemplate) writes a scratch file in the working directory.
    with tempfile.TemporaryDirectory(prefix="discover-sandbox-") as scratch:
        os.chdir(scratch)
        _serve(port, region, authorization_log, propagation_delay)
        os.chdir(tempfile.gettempdir())  # leave the folder so it can be removed


def _serve(
    port: int, region: str, authorization_log: Path | None, propagation_delay: float
) -> None:
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    from moto import settings

    from discover.local import patches
    from discover.local.propagation import LEDGER

    patches.apply(authorization_log)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    server = _Server("127.0.0.1", port)
    server.start()
    endpoint = server.endpoint
    identity = _bootstrap(endpoint, region)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # enforcement on from here
    LEDGER.configure(propagation_delay)  # the bootstrap's own policies show at once
    announcement = {"endpoint": endpoint, "region": region, "account": ACCOUNT_ID, **identity}
    sys.stdout.write(json.dumps(announcement) + "\n")
    sys.stdout.flush()
    stop = threading.Event()

    def _watch_stdin() -> None:
        sys.stdin.read()  # returns when the parent closes our stdin or dies
        stop.set()

    threading.Thread(target=_watch_stdin, daemon=True).start()
    stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m discover.local")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--authorization-log", type=Path, default=None)
    parser.add_argument(
        "--propagation-delay",
        type=float,
        default=0.0,
        help="seconds before an identity-policy change is seen (IAM's eventual consistency)",
    )
    args = parser.parse_args(argv)
    serve(args.port, args.region, args.authorization_log, args.propagation_delay)
