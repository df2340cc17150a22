"""Errors of the server package.

PathwatchError (code, http_status)
├── StartupError         the service cannot start as configured
├── NotFoundError        a resource the caller named does not exist (404)
└── InvalidRequestError  a query or body the API cannot use (422)
"""

from __future__ import annotations


class PathwatchError(Exception):
    """Base error: a stable `code`, an HTTP status and a message for people."""

    http_status = 500

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StartupError(PathwatchError):
    """The service cannot start as configured (data directory, database, ports)."""


class NotFoundError(PathwatchError):
    http_status = 404


class InvalidRequestError(PathwatchError):
    http_status = 422
