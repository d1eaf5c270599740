"""Deploy CLI messages that say a call was refused without naming the IAM action.

The Serverless CLI turns some S3 refusals into its own words ("Could not access the
deployment bucket"); a HEAD request has no body, so even AWS's answer names nothing. Each
known message is mapped to the call the CLI makes there (read in its source) and the kind of
resource it makes it on; the caller then locates that resource with admin credentials (the
stack's deployment bucket), which works the same on AWS and in the local sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from discover.iamdb import Action


class Target(str, Enum):
    """What the refused call acted on, to be located by the caller."""

    DEPLOYMENT_BUCKET = "deployment-bucket"
    DEPLOYMENT_OBJECTS = "deployment-objects"


@dataclass(frozen=True, slots=True)
class KnownMessage:
    text: str  # the CLI's sentence, matched verbatim
    action: Action
    target: Target
    call: str  # the SDK call behind it, for the report


# Serverless Framework v3 / osls (lib/plugins/aws/...): each sentence and the call behind it.
KNOWN_MESSAGES: tuple[KnownMessage, ...] = (
    # lib/plugins/aws/lib/check-if-bucket-exists.js: S3 HeadBucket -> 403
    KnownMessage(
        "Could not access the deployment bucket",
        Action("s3:ListBucket"),
        Target.DEPLOYMENT_BUCKET,
        "S3 HeadBucket",
    ),
    # deploy-list.js, remove/lib/bucket.js, cleanup-s3-bucket.js, rollback.js: ListObjectsV2
    KnownMessage(
        "Could not list objects in the deployment bucket",
        Action("s3:ListBucket"),
        Target.DEPLOYMENT_BUCKET,
        "S3 ListObjectsV2",
    ),
    # deploy/lib/check-for-changes.js: HeadObject on the previous artifacts -> 403
    KnownMessage(
        "Could not access objects in the deployment bucket",
        Action("s3:GetObject"),
        Target.DEPLOYMENT_OBJECTS,
        "S3 HeadObject",
    ),
)


def find_known_messages(text: str) -> tuple[KnownMessage, ...]:
    """The known messages that occur in ``text``, in table order."""
    return tuple(m for m in KNOWN_MESSAGES if m.text in text)
