"""Properties of the denial parser over generated and mutated text (hypothesis).

Generated denials in every documented arrangement parse to what was put in; hostile or
random text never makes the parser crash or name a wildcard; mutated negatives stay
negative; and the streaming reader agrees with the whole-text one. Each property runs 200
examples; set DENIALS_EXAMPLES for a longer search.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover import denials, iamdb
from discover.denials import Denial, Reason, ResourceKind, iter_denials, parse_denials

SETTINGS = settings(
    max_examples=int(os.environ.get("DENIALS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SERVICES = ("iam", "s3", "lambda", "cloudformation", "sns", "sqs", "logs", "ec2", "ssm", "kms")
ACTIONS = tuple(a for service in SERVICES for a in iamdb.actions_of_service(service))

PRINCIPALS = (
    "arn:aws:iam::123456789012:user/ci",
    "arn:aws:sts::123456789012:assumed-role/deploy/session-1",
    "arn:aws:sts::123456789012:assumed-role/Deploy-Role_x/i-0abc123",
    "arn:aws:iam::123456789012:user/a.b@example.com",
    "<MY_USER_ARN>",
    "anonymous",
)
ARNS = (
    "arn:aws:iam::123456789012:role/x",
    "arn:aws:s3:::bucket/key/with/slashes.json",
    "arn:aws:cloudformation:us-east-1:123456789012:stack/demo-dev/*",
    "arn:aws:lambda:us-east-1:123456789012:function:demo-dev-hello",
    "arn:aws:apigateway:us-east-1::/restapis/*",
    "arn:aws:ssm:us-west-2:123456789012:parameter/cdk-bootstrap/hnb659fds/version",
)
NAMED = ("role XPTO", "user alice", "*", "settings", "cfn/atlas/profile/dev")
REASONS: tuple[tuple[str, Reason], ...] = (
    ("", Reason.UNSPECIFIED),
    ("because no identity-based policy allows the {action} action", Reason.NO_IDENTITY_POLICY),
    ("because no permissions boundary allows the {action} action", Reason.NO_BOUNDARY),
    ("because no session policy allows the {action} action", Reason.NO_SESSION_POLICY),
    ("because no resource-based policy allows the {action} action", Reason.NO_RESOURCE_POLICY),
    ("with an explicit deny", Reason.EXPLICIT_DENY_UNSPECIFIED),
    ("with an explicit deny in a service control policy", Reason.EXPLICIT_DENY_SCP),
    ("with an explicit deny in a permissions boundary", Reason.EXPLICIT_DENY_BOUNDARY),
    ("with an explicit deny in a resource-based policy", Reason.EXPLICIT_DENY_RESOURCE),
    ("with an explicit deny in an identity-based policy", Reason.EXPLICIT_DENY_IDENTITY),
)
GAPS = (" ", "  ", "\n", "\n     ", " \n", "\n│ ")
NOISE = (
    "2024-05-01T12:00:00.123Z INFO Waiting for stack demo-dev to finish updating",
    "Serverless: Packaging service...",
    "    at Request.extractError (/var/task/node_modules/aws-sdk/lib/protocol/json.js:52:27)",
    "│ ",
    "",
    "   3/12 | 12:00:01 PM | UPDATE_COMPLETE | AWS::Lambda::Permission | HelloPermission",
)
WRAPPERS = (
    "{m}",
    "An error occurred (AccessDenied) when calling the SomeCall operation: {m}",
    "ServerlessError: {m}",
    "│ Error: creating thing: AccessDenied: {m}",
    'Resource handler returned message: "{m} (Service: Iam, Status Code: 403, Request ID: abc)"'
    " (RequestToken: t, HandlerErrorCode: AccessDenied)",
    "JSON",
    "CREATE_FAILED | AWS::IAM::Role | Role | API: iam:CreateRole {m}",
)


@st.composite
def denial_messages(draw: st.DrawFn) -> tuple[str, tuple[str | None, str, str | None, Reason]]:
    """A denial in one of AWS's arrangements, with what it must parse to."""
    action = draw(st.sampled_from(ACTIONS))
    service, name = action.split(":")
    written = draw(st.sampled_from((action, f"{service.upper()}:{name}", f"{service}:{name}")))
    principal = draw(st.one_of(st.none(), st.sampled_from(PRINCIPALS)))
    resource = draw(st.one_of(st.none(), st.sampled_from(ARNS + NAMED)))
    quoted = resource is not None and resource.startswith("arn:") and draw(st.booleans())
    clause, reason = draw(st.sampled_from(REASONS))
    gaps = [draw(st.sampled_from(GAPS)) for _ in range(6)]

    message = ""
    if principal is not None:
        message += f"User:{gaps[0]}{principal}{gaps[1]}"
    message += f"is not authorized to perform:{gaps[2]}{written}"
    if resource is not None:
        shown = f'"{resource}"' if quoted else resource
        message += f"{gaps[3]}on resource:{gaps[4]}{shown}"
    if clause:
        message += gaps[5] + clause.format(action=written)

    wrapper = draw(st.sampled_from(WRAPPERS))
    if wrapper == "JSON":
        text = json.dumps({"message": message, "code": "AccessDeniedException"})
    else:
        text = wrapper.format(m=message)
    before = draw(st.lists(st.sampled_from(NOISE), max_size=3))
    after = draw(st.lists(st.sampled_from(NOISE), max_size=3))
    text = "\n".join([*before, text, *after])
    return text, (principal, action, resource, reason)


def keys(found: tuple[Denial, ...] | list[Denial]) -> list[tuple[str | None, ...]]:
    return [(d.principal, d.action, d.resource, d.reason.value) for d in found]


@SETTINGS
@given(denial_messages())
def test_generated_denial_parses_to_what_was_put_in(
    case: tuple[str, tuple[str | None, str, str | None, Reason]],
) -> None:
    """A generated denial, wrapped and laid out any documented way, parses to its parts."""
    text, (principal, action, resource, reason) = case
    found = parse_denials(text)
    assert [(d.principal, d.action, d.resource, d.reason) for d in found] == [
        (principal, action, resource, reason)
    ]
    assert found[0].action_known


@SETTINGS
@given(denial_messages())
def test_generated_denial_streams_the_same(
    case: tuple[str, tuple[str | None, str, str | None, Reason]],
) -> None:
    """iter_denials over the lines of a generated denial agrees with parse_denials."""
    text, _ = case
    assert keys(list(iter_denials(text.split("\n")))) == keys(parse_denials(text))


@SETTINGS
@given(
    st.lists(denial_messages(), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=400),
    st.integers(min_value=1, max_value=6),
)
def test_chunk_boundaries_do_not_change_what_is_found(
    cases: list[tuple[str, tuple[str | None, str, str | None, Reason]]],
    chunk_chars: int,
    batch_lines: int,
) -> None:
    """However the stream is cut into chunks, it yields what parse_denials finds."""
    text = "\n".join(text for text, _ in cases)
    streamed = denials._iter_denials(text.split("\n"), "output", chunk_chars, batch_lines)
    assert keys(list(streamed)) == keys(parse_denials(text))


@st.composite
def wildcard_messages(draw: st.DrawFn) -> str:
    """A denial whose action is a wildcard pattern, as hostile text would put it."""
    action = draw(st.sampled_from(ACTIONS))
    service, name = action.split(":")
    cut = draw(st.integers(min_value=0, max_value=len(name)))
    pattern = draw(
        st.sampled_from(
            (f"{service}:*", "*", f"{service}:{name[:cut]}*", f"{service}:{name[:cut]}?", "*:*")
        )
    )
    principal = draw(st.sampled_from(PRINCIPALS))
    return draw(
        st.sampled_from(
            (
                f"User: {principal} is not authorized to perform: {pattern} on resource: *",
                f"a function named `x is not authorized to perform: {pattern} on resource: *`",
                f"User doesn't have permission to call {pattern}",
                f'An additional permission "{pattern}" is required',
                f"Not authorized to perform {pattern}",
            )
        )
    )


@SETTINGS
@given(wildcard_messages())
def test_wildcard_action_is_never_yielded(text: str) -> None:
    """No message, however worded, makes the parser name a wildcard action."""
    for denial in parse_denials(text):
        assert denial.action is None


FRAGMENTS = (
    "User: ",
    "Principal: ",
    "is not authorized to perform: ",
    "is not authorized to perform ",
    "Not authorized to perform ",
    "on resource: ",
    "arn:aws:",
    "arn:aws:iam::1:role/",
    "iam:*",
    "s3:PutObject",
    "SNS:publish",
    "*",
    "?",
    "Access Denied",
    "AccessDenied",
    "AccessDeniedException",
    "when calling the PutObject operation: ",
    "API: s3:CreateBucket ",
    "operation error S3: HeadObject,",
    "Forbidden: Forbidden",
    "Forbidden",
    "Encoded authorization failure message: ",
    "abcDEF_-123",
    "because no identity-based policy allows",
    "with an explicit deny in a ",
    "service control policy",
    "doesn't have permission to call ",
    'An additional permission "',
    "You are not authorized to perform this operation",
    "role ",
    '"',
    "<",
    ">",
    "\\",
    '\\"',
    "\\n",
    "\\u003c",
    "\n",
    "\r\n",
    "│",
    " ",
    "\x1b[31m",
    "An error occurred (UnauthorizedOperation) when calling the ",
    "A client error (AuthorizationError) occurred when calling the ",
    " operation: ",
    "DescribeRegions",
    "operation error EC2: ",
    "operation error Secrets Manager: GetSecretValue,",
    'Error executing "PutObject" on "https://b.s3.eu-west-1.amazonaws.com',
    "[AWS ec2 403 0.5s 0 retries] describeInstances(",
    "Response ec2/",
    " failed",
    "denied by S3, please make sure your request credentials have permission to ",
    "GetObject for b/k.",
    "Error occurred while GetObject. S3 Error Code",
    "S3 object to which you have access",
    " must reference a valid ",
    "https://s3.amazonaws.com/b/",
    "User `",
    "' ",
    "perform `",
    "{account-id}",
    " ... ",
    "s3://",
)
hostile_text = st.lists(
    st.one_of(st.text(max_size=20), st.sampled_from(FRAGMENTS)), max_size=40
).map("".join)


def assert_sane(found: tuple[Denial, ...] | list[Denial]) -> None:
    for denial in found:
        if denial.action is not None:
            assert "*" not in denial.action
            assert "?" not in denial.action
            assert iamdb.is_action_shaped(denial.action)
            canonical = iamdb.canonical_action(denial.action)
            assert denial.action_known == (canonical == denial.action)
            # A known action is always the canonical spelling, never some other case.
            assert canonical is None or canonical == denial.action
        assert isinstance(denial.reason, Reason)
        # A resource always has a kind, and only a concrete ARN is ever grantable.
        assert (denial.resource is None) == (denial.resource_kind is None)
        if denial.resource_grantable:
            assert denial.resource is not None
            assert iamdb.is_concrete_arn(denial.resource)
        # An action read from an operation is a real IAM action, never a guess.
        if denial.basis is not None and denial.action is not None:
            assert denial.action_known


@SETTINGS
@given(hostile_text)
def test_hostile_text_never_crashes_or_names_a_wildcard(text: str) -> None:
    """Random text laced with message fragments parses without error and stays sane."""
    assert_sane(parse_denials(text))


@SETTINGS
@given(hostile_text)
def test_hostile_text_streams_the_same(text: str) -> None:
    """The streaming reader agrees with parse_denials on random text too."""
    streamed = list(iter_denials(text.split("\n")))
    assert_sane(streamed)
    assert keys(streamed) == keys(parse_denials(text))


def corpus_negatives() -> list[str]:
    folder = Path(
        os.environ.get("DISCOVER_CORPUS")
        or Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
    )
    path = folder / "denials-dev.jsonl"
    if not path.is_file():
        return []  # test_denials_corpus fails loudly on a missing corpus
    with path.open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return [r["text"] for r in records if r["negative"]]


NEGATIVES = (
    *corpus_negatives(),
    "Error: The security token included in the request is expired",
    "Throttling: Rate exceeded",
    "ServerlessError: An error occurred while provisioning your stack: MyBucket already exists.",
    "AuthFailure: Not authorized for images: [ami-03a5b89a2fbe7dd3d]",
    "bash: ./deploy.sh: Permission denied",
)


@st.composite
def mutated_negatives(draw: st.DrawFn) -> str:
    """A negative message, mangled the ways logs mangle text."""
    text = draw(st.sampled_from(NEGATIVES))
    for mutation in draw(st.lists(st.integers(min_value=0, max_value=6), max_size=4)):
        if mutation == 0:
            at = draw(st.integers(min_value=0, max_value=len(text)))
            noise = draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
            text = text[:at] + noise + text[at:]
        elif mutation == 1:
            text = json.dumps({"message": text})
        elif mutation == 2:
            text = "\n".join(f"│ {line}" for line in text.split("\n"))
        elif mutation == 3:
            text = text.replace("\n", "\r\n")
        elif mutation == 4:
            text = f"{text}\n{text}"
        elif mutation == 5:
            text = text.swapcase()
        else:
            cut = draw(st.integers(min_value=0, max_value=len(text)))
            text = text[cut:] + "\n" + text[:cut]
    return text


@SETTINGS
@given(mutated_negatives())
def test_mutated_negative_yields_nothing(text: str) -> None:
    """Expired tokens, throttling, "already exists", mangled any way, yield no denial."""
    assert parse_denials(text) == ()
    assert list(iter_denials(text.split("\n"))) == []


REDACTIONS = ("<account-id>", "{AccountId}", "${AWS::AccountId}", "XXXXXXXXXXXX", "***", "[ID]", "")


@st.composite
def redacted_denials(draw: st.DrawFn) -> tuple[str, str]:
    """A denial whose resource ARN has its account hidden the ways posters hide it."""
    action = draw(st.sampled_from(ACTIONS))
    arn = draw(st.sampled_from([a for a in ARNS if a.split(":")[4]]))
    parts = arn.split(":", 5)
    parts[4] = draw(st.sampled_from(REDACTIONS))
    spaced = draw(st.booleans()) and parts[4].startswith(("<", "{"))
    written = ":".join(parts) if not spaced else ":".join([*parts[:4], f" {parts[4]} ", parts[5]])
    principal = draw(st.sampled_from(PRINCIPALS))
    clause, _ = draw(st.sampled_from(REASONS))
    text = f"User: {principal} is not authorized to perform: {action} on resource: {written}"
    if clause:
        text += " " + clause.format(action=action)
    return text, written


@SETTINGS
@given(redacted_denials())
def test_redacted_resource_is_kept_as_written_and_never_grantable(case: tuple[str, str]) -> None:
    """An ARN with a hidden part is reported whole, as written, and marked not grantable."""
    text, written = case
    (denial,) = parse_denials(text)
    assert denial.resource == written
    assert denial.resource_kind is ResourceKind.REDACTED_ARN
    assert not denial.resource_grantable


OPERATION_WORDINGS = (
    "An error occurred (UnauthorizedOperation) when calling the {op} operation: "
    "You are not authorized to perform this operation.",
    "operation error EC2: {op}, https response error StatusCode: 403, RequestID: r, "
    "api error UnauthorizedOperation: You are not authorized to perform this operation.",
    "operation error {svc}: {op}, https response error StatusCode: 403, RequestID: r, "
    "AccessDeniedException: ",
    'Error executing "{op}" on "https://{svc}.us-east-1.amazonaws.com"; AWS HTTP error: '
    "403 AccessDenied (client): Access Denied",
    "An error occurred (AccessDenied) when calling the {op} operation: Access Denied",
)


@SETTINGS
@given(
    st.sampled_from(OPERATION_WORDINGS),
    st.one_of(
        st.sampled_from(("RunInstances", "DescribeRegions", "PutObject", "GetSecretValue")),
        st.from_regex(r"[A-Z][A-Za-z0-9]{0,30}", fullmatch=True),
    ),
    st.sampled_from(("s3", "EC2", "Secrets Manager", "ses", "Nope", "lambda")),
)
def test_an_operation_becomes_a_real_action_or_none(wording: str, op: str, svc: str) -> None:
    """Whatever operation and service a message names, the action is a real one or nothing."""
    for denial in parse_denials(wording.format(op=op, svc=svc)):
        assert denial.action is None or denial.action_known
        if denial.action is not None:
            assert denial.basis is not None
            assert op.lower() in denial.basis.lower()
