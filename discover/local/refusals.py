"""The error responses the sandbox sends, in each service's own wire format.

AWS answers a refused request in the protocol of the service: Query and REST-XML services
(IAM, STS, CloudFormation, SNS, S3) with an XML error document, JSON-protocol services
(Lambda, CloudWatch Logs, DynamoDB, SQS, EventBridge, API Gateway) with a JSON body holding
``__type`` and ``message``. SDKs only surface the message when the shape is right.
"""

from __future__ import annotations

from discover.local import authorize

# HTTP status and error code of an access denial, per service, as AWS sends them.
_ACCESS_DENIED: dict[str, tuple[int, str]] = {
    "logs": (400, "AccessDeniedException"),
    "dynamodb": (400, "AccessDeniedException"),
    "events": (400, "AccessDeniedException"),
    "sqs": (403, "AccessDenied"),
    "sns": (403, "AuthorizationError"),
    "lambda": (403, "AccessDeniedException"),
    "apigateway": (403, "AccessDeniedException"),
}
_JSON_PROTOCOLS = frozenset({"json", "rest-json"})

EXPIRED_MESSAGE = "The security token included in the request is expired"
_S3_EXPIRED_MESSAGE = "The provided token has expired."


def _xml_error(code: str, message: str, status: int) -> Exception:
    from moto.core.exceptions import _RESTError

    class _RefusalError(_RESTError):
        pass

    error = _RefusalError(code, message)
    error.code = status
    return error


def _json_error(code: str, message: str, status: int) -> Exception:
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    return error


def access_denied(service: str, message: str) -> Exception:
    """An AccessDenied for ``service`` carrying ``message``, ready to raise inside moto."""
    if service == "s3":
        from moto.s3.exceptions import S3ClientError

        s3_error: Exception = S3ClientError("AccessDenied", message)
        return s3_error
    json_protocol = authorize.protocol_of(service) in _JSON_PROTOCOLS
    # NOTE: JSON-protocol services (ECR, KMS, Step Functions, SSM, ...) name the error
    # AccessDeniedException; Query and REST-XML ones AccessDenied. CLIs match the code to
    # tolerate a refusal (osls's ECR check on remove), so the name must be AWS's.
    fallback = (400, "AccessDeniedException") if json_protocol else (403, "AccessDenied")
    status, code = _ACCESS_DENIED.get(service, fallback)
    if json_protocol:
        return _json_error(code, message, status)
    return _xml_error(code, message, status)


def expired_token(service: str) -> Exception:
    """ExpiredToken: the request's STS session has run out."""
    if service == "s3":
        from moto.s3.exceptions import S3ClientError

        s3_error: Exception = S3ClientError("ExpiredToken", _S3_EXPIRED_MESSAGE)
        return s3_error
    if authorize.protocol_of(service) == "json":
        return _json_error("ExpiredTokenException", EXPIRED_MESSAGE, 400)
    if authorize.protocol_of(service) == "rest-json":
        return _json_error("ExpiredTokenException", EXPIRED_MESSAGE, 403)
    return _xml_error("ExpiredToken", EXPIRED_MESSAGE, 403)


def validation_error(service: str, message: str) -> Exception:
    """A 400 ValidationError (e.g. STS refusing a session duration)."""
    if authorize.protocol_of(service) in _JSON_PROTOCOLS:
        return _json_error("ValidationException", message, 400)
    return _xml_error("ValidationError", message, 400)
