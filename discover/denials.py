"""Permission denials: what was refused, to whom, on what, and why, read from text.

``parse_denials`` is pure: it reads text (a deploy's output, a stack event's reason, a log)
and returns every permission denial in it; ``iter_denials`` does the same over a stream of
lines in bounded memory, for logs too big to hold. The text is untrusted: it never yields a
wildcard action, and an action it yields is either canonical per the IAM data or kept as
written with ``Denial.action_known`` false, which the grant step refuses.

How it reads, and why it stays linear in the size of its input: a few plain substrings
(``uthori``, ``ccess Denied``, ``ccessDenied``, ``Forbidden``, ``ermission``) are found with
``str.find``; each hit is then read by small anchored patterns over a bounded window around
it (a few hundred characters back for the principal, a few kilobytes forward for the
resource and the reason). No pattern ever runs over the whole text.

The shapes it knows:

- ``User: P is not authorized to perform: A on resource: R because no identity-based policy
  allows the A action`` and its variants: no ``User:``, no resource, no reason, an explicit
  deny of each policy type, a resource in double quotes (S3), a non-ARN resource
  (``role XPTO``), parts wrapped over lines, a principal glued to ``is not authorized``;
- ``Not authorized to perform A``, ``doesn't have permission to call A``,
  ``An additional permission "A" is required``;
- S3's bare ``Access Denied`` / ``Forbidden``, with the action from the operation it names
  (``when calling the PutObject operation``, ``operation error S3: HeadObject``,
  CloudFormation's ``API: s3:CreateBucket``);
- ``Encoded authorization failure message: ...`` (the blob is kept in ``Denial.encoded``);
- bare error codes (``AccessDenied``, ``AccessDeniedException``, ``UnauthorizedOperation``,
  ``AuthorizationError``, ``You are not authorized to perform this operation``), which say
  only that something was denied, unless the text around them names the operation and its
  service (botocore's ``An error occurred (CODE) when calling the OP operation``, the Go SDK's
  ``operation error SERVICE: OP``, an endpoint host, the client): then the action is the one
  IAM checks for that operation, and ``Denial.basis`` says how it was read;
- S3 refusals relayed by Lambda and CloudFormation (``Your access has been denied by S3 ...
  GetObject for BUCKET/KEY``, ``Error occurred while GetObject``, ``TemplateURL must reference
  a valid S3 object to which you have access``): ``s3:GetObject``.

Every resource is kept as written, with its kind (``ResourceKind``): only a concrete ARN is
``resource_grantable``; a redacted or templated one (``arn:aws:iam::<account>:role/x``) is
evidence for the report, never a grant's resource.

A denial that names nothing (no principal, action or resource) is reported only when the
text holds no better one: it is the same refusal seen through a vaguer message.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from itertools import islice, repeat
from typing import Final, assert_never

from discover import iamdb, operations
from discover.iamdb import Action


class Reason(str, Enum):
    """Why a request was denied, as the message tells it (see DESIGN.md's reason table)."""

    NO_IDENTITY_POLICY = "no-identity-policy"
    UNSPECIFIED = "unspecified"
    S3_OPAQUE = "s3-opaque"
    ENCODED = "encoded"
    EXPLICIT_DENY_IDENTITY = "explicit-deny-identity"
    EXPLICIT_DENY_SCP = "explicit-deny-scp"
    EXPLICIT_DENY_RESOURCE = "explicit-deny-resource"
    EXPLICIT_DENY_BOUNDARY = "explicit-deny-boundary"
    EXPLICIT_DENY_UNSPECIFIED = "explicit-deny-unspecified"
    NO_BOUNDARY = "no-boundary"
    NO_SESSION_POLICY = "no-session-policy"
    NO_RESOURCE_POLICY = "no-resource-policy"

    @property
    def fixable(self) -> bool:
        """Can an Allow in the role's identity policy fix a denial for this reason?"""
        return self in _FIXABLE


_FIXABLE = frozenset({Reason.NO_IDENTITY_POLICY, Reason.UNSPECIFIED, Reason.S3_OPAQUE})


def describe_unfixable(reason: Reason) -> str:  # noqa: PLR0911 - one return per reason
    """One line for the user: which policy must change for ``reason``, and who can change it."""
    match reason:
        case Reason.EXPLICIT_DENY_SCP:
            return (
                "A service control policy of the AWS Organization denies it: only the "
                "organisation's management account (or its delegated administrator) can "
                "change that policy."
            )
        case Reason.EXPLICIT_DENY_BOUNDARY:
            return (
                "The role's permissions boundary explicitly denies it: the account administrator "
                "who set the boundary must change it."
            )
        case Reason.NO_BOUNDARY:
            return (
                "The role's permissions boundary does not allow it: the account administrator who "
                "set the boundary must add it there."
            )
        case Reason.EXPLICIT_DENY_RESOURCE:
            return (
                "The resource's own policy (bucket, key, trust or endpoint policy) explicitly "
                "denies it: the resource owner must change that policy."
            )
        case Reason.NO_RESOURCE_POLICY:
            return (
                "The resource's own policy (bucket, key, trust or endpoint policy) does not allow "
                "the role: the resource owner must grant it there."
            )
        case Reason.NO_SESSION_POLICY:
            return (
                "The session policy passed when the role was assumed does not allow it: whoever "
                "assumes the role must pass a wider session policy, or none."
            )
        case Reason.EXPLICIT_DENY_IDENTITY:
            return (
                "A Deny statement in an identity-based policy of the role blocks it, and a deny "
                "wins over any allow: whoever owns that deny statement must narrow or remove it."
            )
        case Reason.EXPLICIT_DENY_UNSPECIFIED:
            return (
                "An explicit deny in a policy the message does not name (identity, boundary, "
                "session, resource or organisation policy): find it with CloudTrail or the "
                "policy simulator, then ask that policy's owner."
            )
        case Reason.ENCODED:
            return (
                "The reason is encoded: decode it with `aws sts decode-authorization-message` "
                "(needs sts:DecodeAuthorizationMessage) to see which policy denied it."
            )
        case Reason.NO_IDENTITY_POLICY | Reason.UNSPECIFIED | Reason.S3_OPAQUE:
            return "An Allow in the role's identity-based policy fixes it: nobody else is needed."
        case _:
            assert_never(reason)


class ResourceKind(str, Enum):
    """What kind of thing a denial's resource is, as the message writes it."""

    ARN = "arn"  # a whole, concrete ARN: the only kind a grant may name
    REDACTED_ARN = "arn-redacted"  # an ARN with parts hidden or templated by whoever pasted it
    IAM_ENTITY = "iam-entity"  # IAM's "role NAME", "user NAME", ...
    PHONE_NUMBER = "phone-number"  # an SMS destination (SNS Publish to a number)
    EMAIL_ADDRESS = "email-address"
    NAME = "name"  # a bare name: a table, a bucket, a secret, a stack, "*"


_PHONE = re.compile(r"^\+[0-9xX*#.\-]{2,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def resource_kind(resource: str | None) -> ResourceKind | None:
    """The kind of ``resource`` as written (None for no resource)."""
    if resource is None:
        return None
    if resource.startswith("arn:"):
        return ResourceKind.ARN if iamdb.is_concrete_arn(resource) else ResourceKind.REDACTED_ARN
    word, _, rest = resource.partition(" ")
    if rest and word.lower() in _ENTITY_WORDS:
        return ResourceKind.IAM_ENTITY
    if _PHONE.match(resource):
        return ResourceKind.PHONE_NUMBER
    if _EMAIL.match(resource):
        return ResourceKind.EMAIL_ADDRESS
    return ResourceKind.NAME


@dataclass(frozen=True, slots=True)
class Denial:
    """One permission denial found in text."""

    action: str | None  # canonical IAM action when known; as written when not; None if unnamed
    resource: str | None  # as given (ARN, or e.g. "role XPTO"); None when not named
    principal: str | None
    reason: Reason
    source: str  # where the text came from: "output", "stack-event", ...
    message: str  # the line(s) it was read from, for the report
    encoded: str | None = None  # the blob of an "Encoded authorization failure message"
    # Where a stack event reported it: the resource CloudFormation was handling. Decisions
    # (PassRole's service, name generalisation) read these fields, never ``message``.
    logical_id: str | None = None
    resource_type: str | None = None
    physical_id: str | None = None
    # What ``resource`` is; left out, it is read from the resource as written.
    resource_kind: ResourceKind | None = None
    # How an action or resource the message does not spell out was derived from it (the
    # operation and where its service came from), for the report; None when it is verbatim.
    basis: str | None = None

    def __post_init__(self) -> None:
        if self.resource_kind is None and self.resource is not None:
            object.__setattr__(self, "resource_kind", resource_kind(self.resource))

    @property
    def resource_grantable(self) -> bool:
        """True when ``resource`` is a concrete ARN, the only resource a grant may name as is.

        A redacted or templated ARN, a phone number, an e-mail address or a bare name is
        evidence for the report, never a grant's resource.
        """
        return self.resource_kind is ResourceKind.ARN

    @property
    def action_known(self) -> bool:
        """True when ``action`` is a real IAM action (so it may be granted)."""
        return self.action is not None and iamdb.is_known_action(self.action)

    @property
    def key(self) -> tuple[str | None, str | None, str | None]:
        return (self.principal, self.action, self.resource)


def parse_denials(text: str, *, source: str = "output") -> tuple[Denial, ...]:
    """Every distinct permission denial in ``text``, in order of first appearance."""
    collector = _Collector()
    buffer = _normalise(text)
    found = [d for d in _scan(buffer, 0, len(buffer), _Cursor(), source) if collector.add(d)]
    leftover = collector.leftover()
    if leftover is not None:
        found.append(leftover)
    return tuple(found)


def iter_denials(lines: Iterable[str], *, source: str = "output") -> Iterator[Denial]:
    """``parse_denials`` over a stream of lines, in bounded memory.

    Lines are read into chunks of about a megabyte; a window of the last lines of each chunk
    is carried into the next, so a message wrapped over a few lines still parses whole. Each
    denial is yielded once, as soon as it is read (a denial that names nothing waits for the
    end, in case a better one turns up).
    """
    return _iter_denials(lines, source, _CHUNK_CHARS, _BATCH_LINES)


def _iter_denials(
    lines: Iterable[str], source: str, chunk_chars: int, batch_lines: int
) -> Iterator[Denial]:
    """``iter_denials`` with its chunk sizes as parameters (tests cut chunks small)."""
    collector = _Collector()
    cursor = _Cursor()
    buffer = ""
    done = 0  # hits before this offset in ``buffer`` were read already
    pending: list[str] = []
    size = 0
    for piece in _pieces(lines, chunk_chars, batch_lines):
        pending.append(piece)
        size += len(piece)
        if size < chunk_chars:
            continue
        buffer += _normalise("".join(pending))
        pending.clear()
        size = 0
        safe = _safe_end(buffer, done)
        for denial in _scan(buffer, done, safe, cursor, source):
            if collector.add(denial):
                yield denial
        # Keep some text before ``safe`` for the next look-backs, and all that follows it.
        keep = max(0, safe - _CONTEXT_CHARS)
        buffer = buffer[keep:]
        done = safe - keep
        cursor.shift(keep)
    buffer += _normalise("".join(pending))
    for denial in _scan(buffer, done, len(buffer), cursor, source):
        if collector.add(denial):
            yield denial
    leftover = collector.leftover()
    if leftover is not None:
        yield leftover


def _pieces(lines: Iterable[str], chunk_chars: int, batch_lines: int) -> Iterator[str]:
    """The text of ``lines`` in pieces of whole lines, each ending with a newline.

    A text file is read a chunk at a time and cut at its last newline (no str per line);
    any other iterable of lines is taken in batches, joined in C: a Python loop over every
    line of a 200 MB log costs more than the scan itself.
    """
    if isinstance(lines, io.TextIOBase):
        carry = ""
        while chunk := lines.read(chunk_chars):
            cut = chunk.rfind("\n") + 1
            if cut == 0:
                carry += chunk  # one line longer than a chunk: wait for its end
                continue
            yield carry + chunk[:cut]
            carry = chunk[cut:]
        if carry:
            yield carry + "\n"
        return
    stream = iter(lines)
    while batch := list(islice(stream, batch_lines)):
        if all(map(str.endswith, batch, repeat("\n"))):
            yield "".join(batch)
        else:  # lines from splitlines() come without their newline
            yield "".join(line if line.endswith("\n") else line + "\n" for line in batch)


def dedupe(denials: Iterable[Denial]) -> tuple[Denial, ...]:
    """Keep the first denial of each (principal, action, resource)."""
    seen: set[tuple[str | None, str | None, str | None]] = set()
    result: list[Denial] = []
    for denial in denials:
        if denial.key not in seen:
            seen.add(denial.key)
            result.append(denial)
    return tuple(result)


# --- streaming limits ----------------------------------------------------------------------

_CHUNK_CHARS: Final = 1 << 20  # new text read per scan
_BATCH_LINES: Final = 4096  # lines taken from the stream at a time
_TAIL_LINES: Final = 32  # lines held back for the next chunk: a wrapped message fits
_LOOKAHEAD_CHARS: Final = 32 << 10  # ...unless those lines are longer than this in all
_CONTEXT_CHARS: Final = 4 << 10  # text kept before the next chunk for look-backs

# --- bounds of each local read (the reason the whole is linear) ------------------------------

_PRINCIPAL_LOOKBACK: Final = 600
_MAX_PRINCIPAL: Final = 512
_MAX_RESOURCE: Final = 2048
_MAX_BLOB: Final = 16 << 10
_LINE_LOOKBACK: Final = 1000
_MESSAGE_CONTEXT: Final = 300


def _safe_end(buffer: str, done: int) -> int:
    """Where the last ``_TAIL_LINES`` lines of ``buffer`` start (bounded by the look-ahead)."""
    floor = max(done, len(buffer) - _LOOKAHEAD_CHARS)
    end = len(buffer) - 1  # the buffer ends with a newline, which starts no line
    for _ in range(_TAIL_LINES):
        newline = buffer.rfind("\n", floor, end)
        if newline == -1:
            return floor
        end = newline
    return end + 1


# --- normalising: colours, line ends, escapes ------------------------------------------------
#
# NOTE: a log viewer's fixed-width wrap is not undone here, over whole lines: real logs are
# full of neighbouring lines of one length, and joining those glues a resource to the next
# line's first word. Wraps are undone where a message is read, one token at a time
# (principal, action, resource ARN, encoded blob), when that token shows it was cut.

# JSON-escaped text, escaped once or more (a message inside a JSON string inside a log line).
# A run of backslashes is taken whole from its first one, and never given back: anything else
# tries every start inside a long run, which is quadratic.
_ESCAPED = re.compile(r"(?<!\\)\\++(?:u([0-9A-Fa-f]{4})|([\"nrt/]))")
_ESCAPES: Final = {'"': '"', "n": "\n", "r": "", "t": "\t", "/": "/"}
_ANSI = re.compile(r"\x1b\[[0-?]*+[ -/]*+[@-~]")


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code is not None:
        char = chr(int(code, 16))
        return char if char.isprintable() or char in "\n\t" else ""
    return _ESCAPES[match.group(2)]


def _normalise(text: str) -> str:
    # Each pass only when its marker is there: most deploy output has none of them.
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\\" in text:
        text = _ESCAPED.sub(_unescape, text)
    return text


# --- finding and reading hits ----------------------------------------------------------------

# "uthori" is in "not authorized", "UnauthorizedOperation" and "Encoded authorization";
# "Denied" in "Access Denied", "AccessDenied" and "AccessDeniedException". Each literal is one
# pass of str.find over the text, the bulk of the time on a big log: as few as there are
# shapes that share no word.
_HIT_NOT_AUTHORIZED: Final = "uthori"
_HIT_DENIED: Final = "Denied"
_HIT_FORBIDDEN: Final = "Forbidden"
_HIT_PERMISSION: Final = "permission"  # lower case: a sentence, not AWS::Lambda::Permission
_HIT_TEMPLATE_URL: Final = "S3 object to which you have access"
_HITS: Final = (
    _HIT_NOT_AUTHORIZED,
    _HIT_DENIED,
    _HIT_FORBIDDEN,
    _HIT_PERMISSION,
    _HIT_TEMPLATE_URL,
)

# Whitespace, the box-drawing bar Terraform starts its wrapped lines with, or the ">" of a
# Markdown quote at the start of a line (messages pasted into issues and chats).
_GAP = r"(?:[\s│]|(?<=\n)>)"


def _words(pattern: str) -> str:
    """``pattern`` with each space standing for any run of whitespace (and Terraform's bar)."""
    return pattern.replace(" ", _GAP + "+")


_NOT_AUTHORIZED = re.compile(
    rf"ot authori[sz]ed(?:{_GAP}+to)?{_GAP}+perform\b(?P<colon>{_GAP}*:)?{_GAP}*"
    # SES (and a few others) quote the action the old way: perform `ses:SendRawEmail'
    r"(?P<quote>[`'\"\u2018])?"
)
_CLOSING_QUOTES: Final = "'`\"\u2019"
_WORD = re.compile(r"[^\s\"'`<>,;()\[\]{}|\\│]{1,256}")
_ON_RESOURCE = re.compile(rf"{_GAP}+on{_GAP}+resource{_GAP}*:?{_GAP}*", re.IGNORECASE)
# A resource: ARN characters, plus three things ARNs hold that also end a token in prose: a
# placeholder with spaces (<account id>), a quoted redaction before a colon
# (arn:aws:iam::"my account":role/x) and a bracketed segment (log-stream:...[$LATEST]abc).
# Posters also template ARNs with braces ({account-id}, ${AWS::Region}), and set placeholders
# off with spaces between the colons (arn:aws:sqs:eu-west-1: <acct> :queue-x, : ... :).
_TOKEN = re.compile(
    r"(?:[^\s\"'`<>,;()\[\]{}|\\│]|<[^<>/\n]{1,80}>|\"[^\"\n]{0,80}\"(?=:)|\[[^\[\]\s]{1,80}\]"
    r"|\$?\{[^{}\s]{1,80}\}"
    r"|(?<=[:/]) (?:<[^<>/\n]{1,80}>|\{[^{}\n]{1,80}\}|\[[^\[\]\n]{1,80}\]|\.{3}|\u2026|\*{1,20}"
    r"|[xX]{3,20}) ?(?=[:/]))++"
)
_QUOTED = re.compile(r"\"([^\"\n]{1,2048})\"")
# IAM names some resources by type and name: "on resource: role XPTO", "user alice".
_ENTITY_WORDS: Final = frozenset(
    {"role", "user", "group", "policy", "instance-profile", "oidc-provider", "saml-provider"}
)
_REASON_WORDS: Final = frozenset({"because", "with", "due"})

_KINDS = (
    r"identity-based polic(?:y|ies)|permissions? boundar(?:y|ies)|sessions? polic(?:y|ies)"
    r"|resource-based polic(?:y|ies)|vpc endpoint polic(?:y|ies)|(?:role )?trust polic(?:y|ies)"
    r"|service control polic(?:y|ies)|resource control polic(?:y|ies)"
)
_REASON = re.compile(
    rf"{_GAP}*[\"'.,;]?{_GAP}*"
    + _words(
        r"(?:because of|because|with|due to) (?:"
        rf"(?:an? )?explicit deny(?: in (?:an?|the) (?P<explicit>{_KINDS}))?"
        r"(?P<via> transitively through an? (?:service|resource) control policy)?"
        rf"|(?:no|the) (?P<implicit>{_KINDS}) allows?(?: the \S+ action)?"
        r")"
    ),
    re.IGNORECASE,
)

_API_BEFORE = re.compile(
    rf"API:{_GAP}*(?P<svc>[A-Za-z0-9-]+):(?P<op>[A-Za-z0-9]+){_GAP}+(?:[A-Za-z:]+{_GAP}+){{0,3}}$"
)
_CALLING_BEFORE = re.compile(
    r"when calling the (?P<op>[A-Za-z0-9]+) operation(?: \(reached max retries: \d+\))?:"
    rf"{_GAP}*(?:AccessDenied:{_GAP}*)?$"
)
_GO_OPERATION = re.compile(r"operation error (?P<svc>[A-Za-z0-9 -]{1,40}?): (?P<op>[A-Za-z0-9]+),")
_NO_PERMISSION = re.compile(
    _words(
        r"(?:(?:doesn't|does not|don't|do not) have|lacks?) (?:the )?(?:required )?permissions? to"
        r"(?: (?:call|perform|access|use|invoke))?"
    )
    + r"[\s│:\"'`]*",
    re.IGNORECASE,
)
_ADDITIONAL_PERMISSION = re.compile(
    _words(r"additional permissions?") + r"[\s│:\"'`]*", re.IGNORECASE
)
_ENCODED_PHRASE: Final = "encoded authorization failure message"
_BLOB = re.compile(r"[A-Za-z0-9_-]+")
_STOP_WORDS: Final = frozenset(
    {
        "because", "with", "due", "status", "at", "on", "in", "is", "and", "or", "for", "the",
        "to", "error", "request", "caused", "debug", "info", "warn", "warning", "trace", "fatal",
    }
)  # fmt: skip
_AFTER_WRAP = re.compile(rf"{_GAP}+(?:because|with|due|\(|status)|[\"'\])]", re.IGNORECASE)
_LOG_LINE_START = re.compile(r"\d{2,4}[-/:]\d\d|\[")

_PRINCIPAL_LABELS: Final = ("User:", "Principal:", "User `", "User '", "User \u2018", "User arn:")

# --- the operation a message names, and its service ------------------------------------------

_CONTEXT_LINES: Final = 3  # lines before a message's own line where its operation may be
_CONTEXT_BEFORE: Final = 800  # at most this much text before the refusal
_CONTEXT_AFTER: Final = 400
# A literal each context pattern below starts with (or holds), to skip windows with none.
_CONTEXT_ANCHORS: Final = (
    "when calling the",
    "operation error ",
    "Response ",
    "Request ",
    "Error executing",
    "[AWS ",
    "denied by S3",
    "Error occurred while",
)
_CONTEXT_ANCHOR = re.compile("|".join(re.escape(anchor) for anchor in _CONTEXT_ANCHORS))
_ANCHOR_LONGEST: Final = max(len(anchor) for anchor in _CONTEXT_ANCHORS)
_ENCODED_REACH: Final = 240  # how far after a refusal its encoded message may start


@dataclass(frozen=True, slots=True)
class _Inferred:
    """An action (and maybe a resource) read from a refusal's context, and how."""

    action: Action | None
    resource: str | None
    service: str | None
    basis: str
    s3: bool = False  # S3's own refusal, relayed: the reason is S3's opaque one


# NOTE: error codes only one service family answers with. EC2's API error codes
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html) name
# UnauthorizedOperation for an IAM refusal; SNS answers AuthorizationError
# (https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html and each action's Errors).
_CODE_SERVICES: Final = {"unauthorizedoperation": "ec2", "authorizationerror": "sns"}

_BOTOCORE_CALL = re.compile(
    r"(?:An error occurred \((?P<code>[^()\s]{1,64})\)|A client error \((?P<code2>[^()\s]{1,64})\)"
    r" occurred) when calling the "
    r"(?P<op>[A-Za-z0-9]{2,80}) operation"
)
_GO_V2_CALL = re.compile(
    r"operation error (?P<svc>[A-Za-z0-9 -]{1,40}?): (?P<op>[A-Za-z0-9]{2,80}),"
)
_GO_V1_CALL = re.compile(
    r"(?:Response|Request) (?P<svc>[a-z][a-z0-9-]{1,40})/(?P<op>[A-Z][A-Za-z0-9]{1,80}) "
    r"(?:Details|failed)"
)
_PHP_CALL = re.compile(
    r"Error executing \\?\"(?P<op>[A-Za-z0-9]{2,80})\\?\" on \\?\"https?://(?P<host>[A-Za-z0-9.-]{1,253})"
)
_JS_V2_CALL = re.compile(
    r"\[AWS (?P<svc>[A-Za-z0-9]{2,40}) \d{3} [\d.]+s \d+ retries\] (?P<op>[A-Za-z0-9]{2,80})\("
)
# Lambda and CloudFormation relaying S3's refusal of the code or template they fetched.
_S3_RELAYED = re.compile(
    r"(?:denied by S3, please make sure your request credentials have permission to "
    r"(?P<op>[A-Za-z0-9]{2,40})(?: for (?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/"
    r"(?P<key>[^\s\"']{1,1024}?))?\.?(?=\s|$)"
    r"|Error occurred while (?P<op2>[A-Za-z0-9]{2,40})\. S3 Error Code)"
)
# Where else a log names the service: an endpoint, a JavaScript SDK file, a boto3 client,
# Java's "(Service: AmazonEC2; ...", Ruby's Aws::EC2::Errors, an S3 URL.
_SERVICE_HINTS = re.compile(
    r"https?://(?P<host>[A-Za-z0-9.-]{1,253}\.amazonaws\.com)"
    r"|aws-sdk/lib/services/(?P<js>[A-Za-z0-9]{2,40})\.js"
    r"|client\(\s*['\"](?P<boto>[a-z0-9-]{2,40})['\"]"
    r"|\(Service: (?P<java>[A-Za-z0-9 ]{2,40});"
    r"|Aws::(?P<ruby>[A-Za-z0-9]{2,40})::Errors"
    r"|(?P<s3url>\bs3://)"
)
_TEMPLATE_URL_BEFORE = re.compile(
    r"(?P<url>https?://[^\s\"'<>]{1,2048})\s+must\s+reference\s+an?\s+valid\s+$"
)
_S3_URL = re.compile(
    r"^https?://(?:(?P<vbucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.)?"
    r"s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?/(?P<path>[^?#\s]*)"
)


def _s3_url_arn(url: str) -> str | None:
    """The ARN of the object an S3 URL names (path or virtual-hosted style), or None."""
    match = _S3_URL.match(url)
    if match is None:
        return None
    path = match.group("path")
    bucket = match.group("vbucket")
    if bucket is None:
        bucket, _, path = path.partition("/")
    if not bucket or not path:
        return None
    return f"arn:aws:s3:::{bucket}/{path}"


def _operation(service: str, op: str, how: str, *, s3: bool = False) -> _Inferred | None:
    """``op`` of ``service`` as its IAM action, when botocore's model of it has that operation."""
    if not operations.has_operation(service, op):
        return None
    action = operations.operation_to_action(service, op)
    if action is None:
        return None
    return _Inferred(action, None, service, f"{action}: the {op} operation, {how}", s3=s3)


def _hinted_service(window: str) -> tuple[str, str] | None:
    """The service a log window names otherwise (endpoint, SDK file, client), and where."""
    found: tuple[str, str] | None = None
    for hint in _SERVICE_HINTS.finditer(window):
        kind = hint.lastgroup
        value = hint.group(kind) if kind else None
        if kind is None or value is None:
            continue
        if kind == "host":
            service = operations.endpoint_service(value)
            where = f"service from the endpoint {value}"
        elif kind == "s3url":
            service, where = "s3", "service from the s3:// URL"
        else:
            service = operations.sdk_service(value)
            where = f"service from the SDK's name {value}"
        if service is not None:
            found = (service, where)  # the nearest one before the refusal wins
    return found


def _read_botocore(match: re.Match[str], window: str) -> _Inferred | None:
    op, code = match.group("op"), match.group("code") or match.group("code2")
    service = _CODE_SERVICES.get(code.lower())
    if service is not None:
        return _operation(service, op, f"service from the error code {code} (botocore)")
    hinted = _hinted_service(window)
    if hinted is not None:
        return _operation(hinted[0], op, f"{hinted[1]} (botocore)")
    return None


def _read_go_v2(match: re.Match[str], window: str) -> _Inferred | None:
    name = match.group("svc")
    service = operations.sdk_service(name)
    if service is None:
        return None
    return _operation(service, match.group("op"), f"service {name} (Go SDK v2)")


def _read_go_v1(match: re.Match[str], window: str) -> _Inferred | None:
    name = match.group("svc")
    service = operations.sdk_service(name)
    if service is None:
        return None
    return _operation(service, match.group("op"), f"service {name} (Go SDK v1)")


def _read_php(match: re.Match[str], window: str) -> _Inferred | None:
    host = match.group("host")
    service = operations.endpoint_service(host)
    if service is None:
        return None
    return _operation(service, match.group("op"), f"service from the endpoint {host} (PHP SDK)")


def _read_js_v2(match: re.Match[str], window: str) -> _Inferred | None:
    name = match.group("svc")
    service = operations.sdk_service(name)
    if service is None:
        return None
    return _operation(service, match.group("op"), f"service {name} (JavaScript SDK v2)")


def _read_s3_relayed(match: re.Match[str], window: str) -> _Inferred | None:
    op = match.group("op") or match.group("op2")
    found = _operation("s3", op, "relayed as S3's refusal", s3=True)
    if found is None:
        return None
    bucket, key = match.group("bucket"), match.group("key")
    resource = f"arn:aws:s3:::{bucket}/{key}" if bucket and key else None
    return _Inferred(found.action, resource, "s3", found.basis, s3=True)


_CONTEXT_READERS: Final = (
    (_BOTOCORE_CALL, _read_botocore),
    (_GO_V2_CALL, _read_go_v2),
    (_GO_V1_CALL, _read_go_v1),
    (_PHP_CALL, _read_php),
    (_JS_V2_CALL, _read_js_v2),
    (_S3_RELAYED, _read_s3_relayed),
)

_EMPTY_RANK: Final = {Reason.UNSPECIFIED: 1, Reason.S3_OPAQUE: 2, Reason.ENCODED: 3}
_UNFIXABLE_RANK: Final = 4


class _Cursor:
    """Where the last full denial message ended: a principal is never looked for before it."""

    __slots__ = ("end",)

    def __init__(self) -> None:
        self.end = 0

    def shift(self, by: int) -> None:
        self.end = max(0, self.end - by)


class _Collector:
    """Dedupes by key, and holds back the best denial that names nothing until the end."""

    __slots__ = ("_empty", "_seen")

    def __init__(self) -> None:
        self._seen: set[tuple[str | None, str | None, str | None]] = set()
        self._empty: Denial | None = None

    def add(self, denial: Denial) -> bool:
        """True when ``denial`` is new and names something: the caller reports it now."""
        if denial.key == (None, None, None):
            if self._empty is None or _rank(denial) > _rank(self._empty):
                self._empty = denial
            return False
        if denial.key in self._seen:
            return False
        self._seen.add(denial.key)
        return True

    def leftover(self) -> Denial | None:
        """The denial that names nothing, when no denial named anything."""
        return None if self._seen else self._empty


def _rank(denial: Denial) -> int:
    if not denial.reason.fixable and denial.reason is not Reason.ENCODED:
        return _UNFIXABLE_RANK
    return _EMPTY_RANK.get(denial.reason, 0)


def _scan(buffer: str, start: int, stop: int, cursor: _Cursor, source: str) -> Iterator[Denial]:
    """The denials whose hit lies in ``buffer[start:stop]``, in order."""
    hits: list[tuple[int, str]] = []
    for literal in _HITS:
        end = stop + len(literal) - 1
        at = buffer.find(literal, start, end)
        while at != -1:
            hits.append((at, literal))
            at = buffer.find(literal, at + 1, end)
    hits.sort()
    reader = _Reader(buffer, cursor, source)
    for at, literal in hits:
        denial = reader.read(at, literal)
        if denial is not None:
            yield denial


class _Reader:
    """Reads the message around one hit, within bounded windows of ``buffer``."""

    __slots__ = ("_anchor_to", "_anchors", "_buffer", "_cursor", "_source")

    def __init__(self, buffer: str, cursor: _Cursor, source: str) -> None:
        self._buffer = buffer
        self._cursor = cursor
        self._source = source
        self._anchors: deque[int] = deque()  # context anchors found at or after the last floor
        self._anchor_to = 0  # the buffer is searched for anchors up to here

    def read(self, at: int, literal: str) -> Denial | None:
        """The denial whose message holds ``literal`` at ``at``, if that is one."""
        if literal == _HIT_NOT_AUTHORIZED:
            return self._authori(at)
        if literal == _HIT_DENIED:
            return self._denied(at)
        if literal == _HIT_FORBIDDEN:
            return self._forbidden(at)
        if literal == _HIT_TEMPLATE_URL:
            return self._template_url(at)
        return self._permission(at)

    def _authori(self, at: int) -> Denial | None:
        text = self._buffer
        if text.startswith("ot a", at - 4) and text[at - 5 : at - 4] in ("n", "N"):
            return self._not_authorized(at - 4)
        if text.startswith("UnauthorizedOperation", at - 3) and _word_start(text, at - 3):
            return self._contextual(Reason.UNSPECIFIED, at - 3, at + 18)
        if text.startswith("AuthorizationError", at - 1) and _word_start(text, at - 1):
            # SNS's code for an IAM refusal, often with the full message after it.
            end = at - 1 + len("AuthorizationError")
            if text.startswith("Exception", end):
                end += len("Exception")
            if text[end : end + 1].isalnum():
                return None
            return self._contextual(Reason.UNSPECIFIED, at - 1, end)
        if text[at - 9 : at + 28].lower() == _ENCODED_PHRASE:
            return self._encoded(at - 9)
        return None

    def _denied(self, at: int) -> Denial | None:
        """``Access Denied`` (S3's message) or ``AccessDenied`` (an error code) at ``at``."""
        text = self._buffer
        if text.startswith("Access ", at - 7):
            return self._access_denied(at - 7)
        if text.startswith("Access", at - 6):
            return self._code(at - 6)
        return None

    def _access_denied(self, at: int) -> Denial | None:
        text = self._buffer
        if at < 0 or text[at] != "A" or not _word_start(text, at):
            return None
        return self._opaque(at, at + len("Access Denied"))

    # -- "... is not authorized to perform: A on resource: R because ..." --

    def _not_authorized(self, at: int) -> Denial | None:
        text = self._buffer
        # ``at`` is the "o" of "not"; the word "not" must start a word ("isnot" is not it).
        if at - 1 > 0 and text[at - 2].isalnum():
            return None
        match = _NOT_AUTHORIZED.match(text, at, at + 80)
        if match is None:
            return None  # "not authorized for images", "not authorized to access ..."
        principal, start = self._principal(at - 1)
        word = _WORD.match(text, match.end())
        token = word.group() if word is not None else ""
        if "*" in token or "?" in token:
            return None  # never a wildcard: whatever this is, it is not AWS naming an action
        token = token.rstrip(".:")
        colon = match.group("colon") is not None
        if iamdb.is_action_shaped(token):
            token, end = self._unwrap_action(token, match.end() + len(token))
            action: str | None = operations.known_action(token) or token
            if match.group("quote") and text[end : end + 1] in _CLOSING_QUOTES:
                end += 1
        elif colon:
            action, end = None, match.end()  # "perform: sts (truncated...)"
        else:
            # "perform this operation", "perform CreateLogGroup with Tags": nothing named.
            return self._vague(start if principal else at - 1, match.end(), principal)
        resource, end = self._resource(end)
        reason, end = _reason(text, end)
        self._cursor.end = end
        return Denial(
            action=action,
            resource=resource,
            principal=principal,
            reason=reason,
            source=self._source,
            message=self._message(start, end),
        )

    def _vague(self, start: int, end: int, principal: str | None) -> Denial:
        """``You are not authorized to perform this operation``: the operation is in context."""
        text = self._buffer
        found = self._context(start, end)
        if found is None and not self._encoded_follows(end):
            api = self._api_action(start)
            if api is not None:
                found = _Inferred(api, None, None, f"the CloudFormation event's API: {api}")
        if found is None:
            reason, _ = _reason(text, end)
            return Denial(
                action=None,
                resource=None,
                principal=principal,
                reason=reason,
                source=self._source,
                message=self._message(start, min(len(text), end + 40)),
            )
        return self._inferred(found, Reason.UNSPECIFIED, start, end, principal)

    def _inferred(
        self, found: _Inferred, reason: Reason, start: int, end: int, principal: str | None = None
    ) -> Denial:
        """The denial of an action found in context; encoded if the message goes on so."""
        encoded: str | None = None
        blob_at = self._buffer[end : end + _ENCODED_REACH].lower().find(_ENCODED_PHRASE)
        if blob_at != -1:
            blob_at += end
            blob = self._encoded(blob_at)
            reason, encoded, end = Reason.ENCODED, blob.encoded, blob_at + len(_ENCODED_PHRASE)
        elif found.s3 or found.service == "s3":
            # An S3 refusal whose action had to be read from its operation: S3 said no more.
            reason = Reason.S3_OPAQUE
        return Denial(
            action=found.action,
            resource=found.resource,
            principal=principal,
            reason=reason,
            source=self._source,
            message=self._message(start, min(len(self._buffer), end + 40)),
            encoded=encoded,
            basis=found.basis,
        )

    def _principal(self, not_at: int) -> tuple[str | None, int]:
        """The principal before "is not authorized" at ``not_at``, and where its message starts."""
        text = self._buffer
        is_at = not_at - 3
        if not (text.startswith("is", is_at) and text[is_at + 2 : is_at + 3].isspace()):
            return None, max(0, not_at)
        floor = max(self._cursor.end, is_at - _PRINCIPAL_LOOKBACK, 0)
        best = -1
        label = ""
        for candidate in _PRINCIPAL_LABELS:
            found = text.rfind(candidate, floor, is_at)
            if found > best:
                best, label = found, candidate
        if best == -1:
            return None, is_at
        if label.endswith("arn:"):
            label = label.removesuffix("arn:")  # "User arn:aws:iam::1:user/x is not ...": keep it
        raw = text[best + len(label) : is_at].strip(" \t\n│").strip(_CLOSING_QUOTES + "\u2018")
        if not raw or len(raw) > _MAX_PRINCIPAL:
            return None, best
        if "\n" in raw:
            # A log viewer wrapped it: an ARN has no spaces, anything else keeps one.
            raw = (
                re.sub(r"[ \t]*\n[\s│]*", "", raw)
                if raw.startswith("arn:")
                else " ".join(raw.replace("│", " ").split())
            )
        return raw, best

    def _resource(self, pos: int) -> tuple[str | None, int]:
        """The resource after "on resource:" at ``pos``, if any, and where it ends."""
        text = self._buffer
        on = _ON_RESOURCE.match(text, pos, pos + 64)
        if on is None:
            return None, pos
        start = on.end()
        opened = text[start : start + 1] in ("`", "'", "\u2018")
        if opened:
            start += 1  # on resource `arn:aws:ses:...:identity/x': the old quoting
        if text.startswith('"', start):
            quoted = _QUOTED.match(text, start, start + _MAX_RESOURCE + 2)
            if quoted is not None:
                return quoted.group(1), quoted.end()
            start += 1
        token = _TOKEN.match(text, start, start + _MAX_RESOURCE)
        if token is None:
            return None, pos
        value, end = token.group(), token.end()
        if value.lower() in _REASON_WORDS:
            return None, pos
        if value.lower() in _ENTITY_WORDS and text.startswith(" ", end):
            name = _TOKEN.match(text, end + 1, end + 1 + _MAX_RESOURCE)
            if name is not None and name.group().lower() not in _REASON_WORDS:
                value, end = f"{value} {name.group()}", name.end()
        elif value.startswith("arn:"):
            value, end = self._unwrap_arn(value, end)
        if value.endswith(".") and not value.endswith(".."):
            value = value[:-1]  # the sentence's full stop, not the ARN's
        if opened and text[end : end + 1] in _CLOSING_QUOTES:
            end += 1
        return value or None, end

    def _unwrap_arn(self, value: str, end: int) -> tuple[str, int]:
        """Join an ARN a log viewer hard-wrapped mid-token onto the next line(s).

        Only when it looks like a wrap: the line is long, the next starts at column 0 with
        no log-line or English start, and either what follows the piece is what follows a
        resource (a reason, a parenthesis, a quote), or the piece ends its line and the ARN
        was incomplete or its line is as long as the one before (a fixed-width wrap).
        """
        text = self._buffer
        for _ in range(4):
            if not text.startswith("\n", end):
                break
            line_start = text.rfind("\n", max(0, end - _LINE_LOOKBACK), end) + 1
            width = end - line_start
            if width < 40:
                break
            piece = _TOKEN.match(text, end + 1, end + 1 + _MAX_RESOURCE)
            if piece is None:
                break
            word = piece.group()
            if (
                word.lower() in _STOP_WORDS
                or word.endswith(":")
                or _LOG_LINE_START.match(word) is not None
            ):
                break
            after = piece.end()
            # The end of the text counts as the end of a line: a stream always ends with one.
            line_ends = after >= len(text) or text.startswith("\n", after)
            if not (
                _AFTER_WRAP.match(text, after, after + 16) is not None
                or (line_ends and (value.count(":") < 5 or self._fixed_width(line_start, end)))
            ):
                break
            value, end = value + word, after
        return value, end

    def _unwrap_action(self, token: str, end: int) -> tuple[str, int]:
        """Join an action a log viewer hard-wrapped mid-name (``lambda:Invoke`` / ``Function``).

        Only into a real action, from a long line; and when the first part is a real action
        too (``s3:GetObject`` / ``Acl``), only when the lines have the width of a fixed wrap.
        """
        text = self._buffer
        if not text.startswith("\n", end):
            return token, end
        line_start = text.rfind("\n", max(0, end - _LINE_LOOKBACK), end) + 1
        if end - line_start < 40:
            return token, end
        piece = _WORD.match(text, end + 1)
        if piece is None:
            return token, end
        rest = piece.group().rstrip(".:")
        if not rest.isalnum() or operations.known_action(token + rest) is None:
            return token, end
        if operations.known_action(token) is not None and not self._fixed_width(line_start, end):
            return token, end
        return token + rest, end + 1 + len(rest)

    def _fixed_width(self, line_start: int, line_end: int) -> bool:
        """Is the line ``[line_start, line_end)`` as long as the line before or after it?"""
        text = self._buffer
        width = line_end - line_start
        if line_start > 0:
            previous = text.rfind("\n", max(0, line_start - 1 - _LINE_LOOKBACK), line_start - 1)
            if line_start - 1 - (previous + 1) == width:
                return True
        following = text.find("\n", line_end + 1, line_end + 2 + width)
        if following == -1 and line_end + 1 + width == len(text):
            following = len(text)
        return following - (line_end + 1) == width

    # -- the vaguer shapes --

    def _opaque(self, start: int, end: int) -> Denial:
        """S3's ``Access Denied``: the action is the one for the operation named before it."""
        action = self._operation_action(start)
        if action is None:
            found = self._context(start, end)
            if found is not None:
                return self._inferred(found, Reason.S3_OPAQUE, start, end)
        return Denial(
            action=action,
            resource=None,
            principal=None,
            reason=Reason.S3_OPAQUE,
            source=self._source,
            message=self._message(start, end),
            basis=None if action is None else f"{action}: the operation S3 refused",
        )

    def _contextual(self, reason: Reason, start: int, end: int) -> Denial:
        """A bare error code: the denial of the operation its context names, if any."""
        found = None if self._full_message_follows(end) else self._context(start, end)
        if found is None:
            return self._empty(reason, start, end)
        return self._inferred(found, reason, start, end)

    def _anchored(self, floor: int, stop: int) -> bool:
        """Does ``[floor, stop)`` hold a context anchor? Each character is searched once.

        Hits come in order, so the windows asked about only move forward: the buffer is
        searched up to the furthest ``stop`` asked so far, and the anchors found are kept
        until a window's floor passes them (a hostile line of a million hits stays linear).
        """
        anchors = self._anchors
        if stop > self._anchor_to:
            begin = max(floor, self._anchor_to - _ANCHOR_LONGEST + 1)
            anchors.extend(m.start() for m in _CONTEXT_ANCHOR.finditer(self._buffer, begin, stop))
            self._anchor_to = stop
        while anchors and anchors[0] < floor:
            anchors.popleft()
        return bool(anchors) and anchors[0] < stop

    def _full_message_follows(self, end: int) -> bool:
        """Does a full "... not authorized to perform: A" message follow the code at ``end``?

        Then that message is the denial, and the code before it only a vaguer view of it.
        """
        text = self._buffer
        at = text.find("ot authori", end, end + _ENCODED_REACH)
        return (
            at != -1
            and _NOT_AUTHORIZED.match(text, at, at + 80) is not None
            and (
                iamdb.is_action_shaped(_first_word(text, _NOT_AUTHORIZED.match(text, at, at + 80)))
            )
        )

    def _template_url(self, at: int) -> Denial | None:
        """CloudFormation's ``TemplateURL must reference a valid S3 object to which you have
        access``: it reads the template from S3 with the caller's credentials."""
        text = self._buffer
        line = text[self._line_floor(at) : at]
        url = _TEMPLATE_URL_BEFORE.search(line)
        resource = _s3_url_arn(url.group("url")) if url is not None else None
        action = operations.known_action("s3:GetObject")
        found = _Inferred(
            action,
            resource,
            "CloudFormation",
            "s3:GetObject: CloudFormation reads a TemplateURL with the caller's credentials",
            s3=True,
        )
        return self._inferred(found, Reason.S3_OPAQUE, at, at + len(_HIT_TEMPLATE_URL))

    def _context(self, start: int, end: int) -> _Inferred | None:
        """The operation the text around ``[start, end)`` names, as an IAM action.

        Read from the message's own line and the few lines before it (never before the last
        full denial): botocore's ``An error occurred (CODE) when calling the OP operation``,
        the Go SDK's ``operation error SERVICE: OP``, ``Response ec2/OP``, PHP's ``Error
        executing "OP" on "https://HOST"``, JavaScript's ``[AWS ec2 403 ...] op(``, and the S3
        refusals Lambda and CloudFormation relay. The service comes from the SDK's wording,
        the error code, the endpoint host or the client named nearby; without one, nothing.
        """
        text = self._buffer
        lowest = max(self._cursor.end, start - _CONTEXT_BEFORE)
        if not self._anchored(lowest, min(len(text), end + _CONTEXT_AFTER)):
            return None  # most refusals name no operation: skip the lines and the patterns
        floor = self._line_floor(start)
        for _ in range(_CONTEXT_LINES):
            if floor <= lowest:
                break
            floor = text.rfind("\n", lowest, floor - 1) + 1 or lowest
        floor = max(floor, lowest)
        stop = text.find("\n", end, end + _CONTEXT_AFTER)
        stop = min(len(text), end + _CONTEXT_AFTER) if stop == -1 else stop
        window = text[floor:stop]
        cut = end - floor
        best: _Inferred | None = None
        best_at = -1
        for pattern, read in _CONTEXT_READERS:
            for match in pattern.finditer(window, 0, min(len(window), cut + _CONTEXT_AFTER)):
                if match.start() >= cut or match.start() <= best_at:
                    continue
                found = read(match, window)
                if found is not None:
                    best, best_at = found, match.start()
        return best

    def _forbidden(self, at: int) -> Denial | None:
        text = self._buffer
        if not _word_start(text, at):
            return None
        after = at + len(_HIT_FORBIDDEN)
        if text.startswith((": Forbidden", ": null"), after):
            return self._opaque(at, after)
        # boto3 on a HEAD: "An error occurred (403) when calling the HeadObject operation:
        # Forbidden", and only for an S3 operation (other services' 403s say more).
        if text[after : after + 1].isalnum():
            return None
        window = text[self._line_floor(at) : at]
        calling = _CALLING_BEFORE.search(window)
        if calling is None or not operations.has_operation("s3", calling.group("op")):
            return None
        return self._opaque(at, after)

    def _code(self, at: int) -> Denial | None:
        """A bare ``AccessDenied``/``AccessDeniedException`` error code, not an XML tag name."""
        text = self._buffer
        if at < 0 or text[at] != "A" or not _word_start(text, at):
            return None
        end = at + len("AccessDenied")
        if text.startswith("Exception", end):
            end += len("Exception")
        if text[end : end + 1].isalnum():
            return None
        if text[at - 1 : at] == "<" or text[at - 2 : at] == "</" or text[end : end + 1] == ">":
            return None  # <AccessDeniedException>...: an element's name, not the error code
        return self._contextual(Reason.UNSPECIFIED, at, end)

    def _permission(self, at: int) -> Denial | None:
        """``doesn't have permission to call A``, ``An additional permission "A" is required``."""
        text = self._buffer
        at += 1  # past the "p": the patterns below are read around the "ermission"
        floor = max(0, at - 40)
        for pattern in (_NO_PERMISSION, _ADDITIONAL_PERMISSION):
            for match in pattern.finditer(text, floor, at + 80):
                if match.start() <= at - 1 < match.end():
                    return self._named_action(match.start(), match.end())
        return None

    def _named_action(self, start: int, pos: int) -> Denial | None:
        text = self._buffer
        word = _WORD.match(text, pos)
        token = word.group().rstrip(".:") if word is not None else ""
        if "*" in token or "?" in token or not iamdb.is_action_shaped(token):
            return None
        reason, end = _reason(text, pos + len(token))
        return Denial(
            action=operations.known_action(token) or token,
            resource=None,
            principal=None,
            reason=reason,
            source=self._source,
            message=self._message(start, end),
        )

    def _encoded(self, start: int) -> Denial:
        text = self._buffer
        pos = start + len(_ENCODED_PHRASE)
        while pos < len(text) and text[pos] in ": \t│":
            pos += 1
        pieces: list[str] = []
        total = 0
        blob = _BLOB.match(text, pos, pos + _MAX_BLOB)
        while blob is not None and total < _MAX_BLOB:
            pieces.append(blob.group())
            total += len(blob.group())
            pos = blob.end()
            # A wrapped blob goes on at column 0 of the next line, with nothing else on it.
            if not text.startswith("\n", pos):
                break
            blob = _BLOB.match(text, pos + 1, pos + 1 + _MAX_BLOB)
            if blob is None or not (
                len(blob.group()) >= 16 and (blob.end() >= len(text) or text[blob.end()] in "\n.")
            ):
                break
        return Denial(
            action=None,
            resource=None,
            principal=None,
            reason=Reason.ENCODED,
            source=self._source,
            message=self._message(start, pos),
            encoded="".join(pieces) or None,
        )

    def _empty(self, reason: Reason, start: int, end: int) -> Denial:
        return Denial(
            action=None,
            resource=None,
            principal=None,
            reason=reason,
            source=self._source,
            message=self._message(start, end),
        )

    # -- helpers over the buffer --

    def _line_floor(self, at: int) -> int:
        """Start of ``at``'s line, or ``_LINE_LOOKBACK`` before ``at`` if the line is longer."""
        floor = max(0, at - _LINE_LOOKBACK)
        return self._buffer.rfind("\n", floor, at) + 1 or floor

    def _operation_action(self, at: int) -> str | None:
        """The action of the operation the message names just before ``at``, if any."""
        window = self._buffer[self._line_floor(at) : at]
        calling = _CALLING_BEFORE.search(window)
        if calling is not None:
            # boto3 names only the operation; "Access Denied" in these words is S3's.
            op = calling.group("op")
            if not operations.has_operation("s3", op):
                return None
            return operations.operation_to_action("s3", op)
        api = _API_BEFORE.search(window)
        if api is not None:
            return operations.operation_to_action(api.group("svc"), api.group("op"))
        go_op = None
        for go_op in _GO_OPERATION.finditer(window):  # noqa: B007 - the last one counts
            pass
        if go_op is not None and go_op.group("svc").strip().lower() == "s3":
            return operations.operation_to_action("s3", go_op.group("op"))
        return None

    def _api_action(self, at: int) -> Action | None:
        """CloudFormation's ``API: ec2:RunInstances`` just before ``at``, as an IAM action."""
        window = self._buffer[self._line_floor(at) : at]
        api = _API_BEFORE.search(window)
        if api is None:
            return None
        return operations.operation_to_action(api.group("svc"), api.group("op"))

    def _encoded_follows(self, at: int) -> bool:
        return _ENCODED_PHRASE in self._buffer[at : at + 120].lower()

    def _message(self, start: int, end: int) -> str:
        """The line(s) from ``start`` to ``end``, cut to a bounded context either side."""
        text = self._buffer
        floor = max(0, start - _MESSAGE_CONTEXT)
        first = text.rfind("\n", floor, start) + 1 or floor
        last = text.find("\n", end, end + _MESSAGE_CONTEXT)
        if last == -1:
            last = min(len(text), end + _MESSAGE_CONTEXT)
        return text[first:last].strip()


def _first_word(text: str, match: re.Match[str] | None) -> str:
    """The word right after ``match`` (an action, when a message names one)."""
    if match is None:
        return ""
    word = _WORD.match(text, match.end())
    return word.group().rstrip(".:") if word is not None else ""


def _word_start(text: str, at: int) -> bool:
    return at <= 0 or not text[at - 1].isalnum()


def _reason(text: str, pos: int) -> tuple[Reason, int]:
    """The reason clause right after ``pos`` ("because no ...", "with an explicit deny ...")."""
    match = _REASON.match(text, pos, pos + 400)
    if match is None:
        return Reason.UNSPECIFIED, pos
    if match.group("via"):
        return Reason.EXPLICIT_DENY_SCP, match.end()
    explicit, implicit = match.group("explicit"), match.group("implicit")
    if implicit is not None:
        return _IMPLICIT[_kind(implicit)], match.end()
    if explicit is not None:
        return _EXPLICIT[_kind(explicit)], match.end()
    return Reason.EXPLICIT_DENY_UNSPECIFIED, match.end()


def _kind(phrase: str) -> str:
    """The policy type a reason clause names, as one key of ``_EXPLICIT``/``_IMPLICIT``."""
    lowered = " ".join(phrase.lower().split())
    for key in ("identity", "boundar", "session", "control", "resource-based", "endpoint"):
        if key in lowered:
            return key
    return "trust"


# NOTE: AWS's documented reason clauses, https://docs.aws.amazon.com/IAM/latest/UserGuide/
# troubleshoot_access-denied.html. Three of their policy types have no class of their own and
# go to the class whose fix is the same: a resource control policy is an organisation policy
# like an SCP ("explicit-deny-scp"; AWS words SCP denials as explicit even when implicit); a
# VPC endpoint policy and a role trust policy are resource-based policies; a deny in a session
# policy, like a missing allow there, is fixed by whoever assumes the role.
_EXPLICIT: Final = {
    "identity": Reason.EXPLICIT_DENY_IDENTITY,
    "boundar": Reason.EXPLICIT_DENY_BOUNDARY,
    "session": Reason.NO_SESSION_POLICY,
    "control": Reason.EXPLICIT_DENY_SCP,
    "resource-based": Reason.EXPLICIT_DENY_RESOURCE,
    "endpoint": Reason.EXPLICIT_DENY_RESOURCE,
    "trust": Reason.EXPLICIT_DENY_RESOURCE,
}
_IMPLICIT: Final = {
    "identity": Reason.NO_IDENTITY_POLICY,
    "boundar": Reason.NO_BOUNDARY,
    "session": Reason.NO_SESSION_POLICY,
    "control": Reason.EXPLICIT_DENY_SCP,
    "resource-based": Reason.NO_RESOURCE_POLICY,
    "endpoint": Reason.NO_RESOURCE_POLICY,
    "trust": Reason.NO_RESOURCE_POLICY,
}


__all__ = [
    "Action",
    "Denial",
    "Reason",
    "dedupe",
    "describe_unfixable",
    "iter_denials",
    "parse_denials",
]


def denial_from_decoded(decoded: str, original: Denial) -> Denial | None:
    """The denial an ``sts:DecodeAuthorizationMessage`` answer describes, or None if unreadable.

    The decoded document names the action and resource in ``context``, and says whether an
    explicit deny matched; anything else in it is ignored.
    """
    import json

    try:
        document = json.loads(decoded)
    except ValueError:
        return None
    context = document.get("context") if isinstance(document, dict) else None
    if not isinstance(context, dict):
        return None
    raw_action = context.get("action")
    if not isinstance(raw_action, str) or "*" in raw_action:
        return None
    principal = context.get("principal")
    principal_arn = principal.get("arn") if isinstance(principal, dict) else None
    resource = context.get("resource")
    explicit = bool(document.get("explicitDeny"))
    return Denial(
        action=iamdb.canonical_action(raw_action) or raw_action,
        resource=resource if isinstance(resource, str) else None,
        principal=principal_arn if isinstance(principal_arn, str) else original.principal,
        reason=Reason.EXPLICIT_DENY_UNSPECIFIED if explicit else Reason.UNSPECIFIED,
        source=f"{original.source} (decoded)",
        message=original.message,
    )
