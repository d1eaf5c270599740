"""The embedded AWS sandbox's server process: moto on loopback, IAM enforced, bootstrapped.

Run as ``python -m discover.local`` by :mod:`discover.local.process`. It starts moto's server on
127.0.0.1, creates an admin user (with an access key) and an empty sandbox role whose trust
policy names the admin, turns IAM enforcement on, prints one JSON line describing itself on
stdout, and serves until it is terminated or its stdin closes.
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
    return {
        "admin_arn": admin_arn,
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "role_arn": role_arn,
    }


def serve(port: int, region: str, authorization_log: Path | None) -> None:
    """Start, bootstrap, announce, and serve until stdin closes."""
    # cfn-lint (used by ValidateTemplate) writes a scratch file in the working directory.
    os.chdir(tempfile.mkdtemp(prefix="discover-sandbox-"))
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    from moto import settings
    from moto.server import ThreadedMotoServer

    from discover.local import patches

    patches.apply(authorization_log)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    endpoint = f"http://{host}:{bound_port}"
    identity = _bootstrap(endpoint, region)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # enforcement on from here
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
    args = parser.parse_args(argv)
    serve(args.port, args.region, args.authorization_log)
