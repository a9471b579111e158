"""Intake errors: each is an HTTP status with a JSON body in the MFO API's error shape."""

from __future__ import annotations

from starlette.responses import JSONResponse

__all__ = ["IntakeError", "error_response"]


class IntakeError(Exception):
    """A request the listener refuses; `message` is safe to send back to the caller."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(error: IntakeError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}},
        status_code=error.status,
        headers=error.headers,
    )
