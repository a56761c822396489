"""What can go wrong talking to the API server, as types callers can catch.

Callers catch the case they handle (a pod already there, a run gone) instead of
comparing status codes; anything else propagates as a :class:`KubeError`.
"""

from __future__ import annotations


class KubeError(Exception):
    """The API server refused a request, or could not be reached (``status`` 0)."""

    status: int = 0

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        head = f"{self.status} {self.reason}".strip() if self.status else "unreachable"
        return f"{head}: {self.message}" if self.message else head


class BadRequest(KubeError):
    """400: e.g. the log of a pod whose container has not started."""

    status = 400


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""

    status = 404


class Conflict(KubeError):
    """409: an object of that name exists, or the object changed since it was read."""

    status = 409


class Invalid(KubeError):
    """422: the server rejected the body or patch as invalid."""

    status = 422


class PatchTestFailed(Invalid):
    """422 from a JSON-patch ``test`` operation: the object is not as the writer saw it."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; list again."""

    status = 410


class Forbidden(KubeError):
    """401 or 403: the credentials are missing, wrong, or not allowed this request."""

    status = 403


class Unreachable(KubeError):
    """The request got no answer: no connection, a timeout, a watch cut off."""


class NoCredentials(KubeError):
    """No usable kubeconfig or in-cluster service account: nothing was sent."""


_BY_STATUS: dict[int, type[KubeError]] = {
    400: BadRequest,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}


def error_for(status: int, message: str, reason: str = "") -> KubeError:
    """The typed error for an HTTP ``status`` and the server's ``message``."""
    kind = _BY_STATUS.get(status, KubeError)
    if kind is Invalid and _is_failed_test(message):
        kind = PatchTestFailed
    return kind(message, status=status, reason=reason)


def _is_failed_test(message: str) -> bool:
    # The API server reports a failed JSON-patch test as a 422 whose message
    # names the test ("the server rejected our request due to an error in our
    # request", cause "testing value ... failed").
    lowered = message.lower()
    return "test" in lowered and "fail" in lowered
