"""Bad input on the command line: a one-line ``discover: ...`` message, a non-zero exit, never
a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from discover.cli import run_main

ROLE = "arn:aws:iam::111122223333:role/sandbox"


def make_service(root: Path, yml: str = "service: demo\nprovider:\n  name: aws\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "serverless.yml").write_text(yml, encoding="utf-8")
    return root


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``run_main`` in-process; argparse's own exit is turned into its code."""
    try:
        code = run_main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str) -> str:
    """The message is one ``discover:`` line, optionally followed by one ``Tip:`` line."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert lines[0].startswith("discover: "), lines[0]
    assert len(lines) <= 2, lines
    if len(lines) == 2:
        assert lines[1].startswith("Tip: "), lines[1]
    return lines[0]


@pytest.mark.parametrize(
    ("name", "argv", "fragment"),
    [
        ("unknown flag", ["--no-such-flag"], "unrecognized arguments"),
        ("max iterations not a number", ["--max-iterations", "many"], "invalid int value"),
        ("unknown parse format", ["parse", "--format", "xml"], "invalid choice"),
        ("verify without --policy", ["verify", "--local"], "--policy"),
    ],
)
def test_argparse_errors_exit_2_without_a_traceback(
    capsys: pytest.CaptureFixture[str], name: str, argv: list[str], fragment: str
) -> None:
    """Flags argparse rejects exit 2 with its usage message, not a traceback."""
    code, _, err = run_cli(argv, capsys)
    assert code == 2, name
    assert fragment in err
    assert "Traceback" not in err


ServiceArgs = Callable[[Path], list[str]]


@pytest.mark.parametrize(
    ("name", "make_argv", "code", "fragment"),
    [
        (
            "bad --role-arn",
            lambda svc: ["--service-dir", str(svc), "--role-arn", "arn:aws:iam::1:role/x"],
            2,
            "is not an IAM role ARN",
        ),
        ("no role and not local", lambda svc: ["--service-dir", str(svc)], 2, "no sandbox role"),
        (
            "missing service folder",
            lambda svc: ["--service-dir", str(svc / "nope"), "--role-arn", ROLE],
            2,
            "does not exist",
        ),
        (
            "bad region",
            lambda svc: ["--service-dir", str(svc), "--local", "--region", "moon"],
            2,
            "is not an AWS region",
        ),
        (
            "max iterations 0",
            lambda svc: ["--service-dir", str(svc), "--local", "--max-iterations", "0"],
            2,
            "between 1 and 1000",
        ),
        (
            "negative run timeout",
            lambda svc: ["--service-dir", str(svc), "--local", "--run-timeout", "-5"],
            2,
            "--run-timeout",
        ),
        (
            "verify: missing policy file",
            lambda svc: [
                "verify",
                "--service-dir",
                str(svc),
                "--local",
                "--policy",
                str(svc / "missing.json"),
            ],
            2,
            "no such file",
        ),
        (
            "verify: policy that is not JSON",
            lambda svc: [
                "verify",
                "--service-dir",
                str(svc),
                "--local",
                "--policy",
                str(svc / "notjson.json"),
            ],
            2,
            "not a JSON policy document",
        ),
        (
            "verify: policy naming an action IAM lacks",
            lambda svc: [
                "verify",
                "--service-dir",
                str(svc),
                "--local",
                "--policy",
                str(svc / "madeup.json"),
            ],
            2,
            "madeup:DoThing",
        ),
        (
            "verify: policy that is a JSON list",
            lambda svc: [
                "verify",
                "--service-dir",
                str(svc),
                "--local",
                "--policy",
                str(svc / "list.json"),
            ],
            2,
            "not a",
        ),
        (
            "verify: policy with a numeric Action",
            lambda svc: [
                "verify",
                "--service-dir",
                str(svc),
                "--local",
                "--policy",
                str(svc / "numeric.json"),
            ],
            2,
            "Action",
        ),
        (
            "verify: policy with a Deny",
            lambda svc: [
                "verify",
                "--service-dir",
                str(svc),
                "--local",
                "--policy",
                str(svc / "deny.json"),
            ],
            2,
            "Allow",
        ),
        (
            "report with no journal",
            lambda svc: ["report", "--service-dir", str(svc)],
            2,
            "no journal",
        ),
        (
            "report on a missing folder",
            lambda svc: ["report", "--service-dir", str(svc / "nope")],
            2,
            "no journal",
        ),
        ("parse a missing file", lambda svc: ["parse", str(svc / "missing.log")], 1, "cannot read"),
        ("parse a folder", lambda svc: ["parse", str(svc)], 1, "cannot read"),
    ],
)
def test_bad_input_is_a_one_line_message(  # noqa: PLR0917 - one argument per column of the table
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    make_argv: ServiceArgs,
    code: int,
    fragment: str,
) -> None:
    """Each bad input ends with its exit code and one ``discover:`` line (and maybe a Tip)."""
    service = make_service(tmp_path / "svc")
    (service / "notjson.json").write_text("{not json", encoding="utf-8")
    (service / "list.json").write_text("[1, 2]", encoding="utf-8")
    for file_name, action in (("madeup.json", "madeup:DoThing"), ("numeric.json", 5)):
        (service / file_name).write_text(
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
                }
            ),
            encoding="utf-8",
        )
    (service / "deny.json").write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}],
            }
        ),
        encoding="utf-8",
    )
    actual, out, err = run_cli(make_argv(service), capsys)
    assert actual == code, (name, err)
    first = assert_one_line_error(err)
    assert fragment in first, name
    assert out == ""


def test_invalid_discover_toml_is_a_one_line_message_with_a_tip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken discover.toml is named, with a Tip, in the one-line form."""
    service = make_service(tmp_path / "svc")
    (service / "discover.toml").write_text("role_arn = \n", encoding="utf-8")
    code, _, err = run_cli(["--service-dir", str(service)], capsys)
    assert code == 2
    assert "not valid TOML" in assert_one_line_error(err)
    assert "\nTip: " in err


def test_invalid_serverless_yml_is_a_one_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A serverless.yml that is not YAML is reported on one line."""
    service = make_service(tmp_path / "svc", yml="service: [unclosed\n")
    code, _, err = run_cli(["--service-dir", str(service), "--local"], capsys)
    assert code == 2
    assert "not valid YAML" in assert_one_line_error(err)


def test_session_length_error_names_the_flag_that_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message for a bad session length names the flag the user can actually pass."""
    service = make_service(tmp_path / "svc")
    code, _, err = run_cli(
        ["--service-dir", str(service), "--local", "--duration-seconds", "60"], capsys
    )
    assert code == 2
    assert "--duration-seconds" in assert_one_line_error(err)


def test_verify_with_a_folder_as_policy_is_a_one_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``verify --policy DIR`` says the policy cannot be read, without a traceback."""
    service = make_service(tmp_path / "svc")
    try:
        code, _, err = run_cli(
            ["verify", "--service-dir", str(service), "--local", "--policy", str(service)], capsys
        )
    except OSError as exc:
        pytest.fail(f"traceback: {exc!r}")
    assert code == 2
    assert_one_line_error(err)


def run_module(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discover", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_module_entry_point_reports_bad_input_on_one_line(tmp_path: Path) -> None:
    """``python -m discover`` with a bad role ARN exits 2 with the one-line message."""
    service = make_service(tmp_path / "svc")
    result = run_module(["--role-arn", "not-an-arn"], cwd=service)
    assert result.returncode == 2
    assert "is not an IAM role ARN" in assert_one_line_error(result.stderr)
    assert result.stdout == ""


def test_no_admin_credentials_is_a_one_line_message(tmp_path: Path) -> None:
    """Running without any AWS credentials says so on one line instead of a traceback."""
    service = make_service(tmp_path / "svc")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_module(
        ["--role-arn", ROLE, "--sandbox-account", "111122223333", "--quiet"], cwd=service, env=env
    )
    assert result.returncode == 2
    assert_one_line_error(result.stderr)


@pytest.mark.parametrize(
    ("name", "argv", "says"),
    [
        ("what it does", ["--help"], "least-privilege IAM policy"),
        ("an example", ["--help"], "discover --local"),
        ("where the policy goes", ["--help"], ".discover/policy.json"),
        ("where the runs' output goes", ["--help"], ".discover/iterations/"),
        ("the exit codes", ["--help"], "exit codes: 0 converged"),
        ("a subcommand's purpose", ["verify", "--help"], "only the given policy"),
    ],
)
def test_help_speaks_to_users(
    name: str, argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` says what discover does, shows an example and where files go."""
    with pytest.raises(SystemExit) as exited:
        run_main(argv)
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert says in out, name
    assert "The only place that exits" not in out
