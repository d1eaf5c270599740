"""discover: the least-privilege IAM policy a deploy needs, learned from its denials."""

__version__ = "0.1.0"
