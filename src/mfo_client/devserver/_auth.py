"""Bearer-token auth: the static `--token`, or short-lived tokens issued by `/auth/login`.

`AuthMiddleware` guards `/api/*` and records who called in the ASGI scope, so idempotency keys
are kept per caller: a client that refreshes its token and retries is still the same caller.
"""

from __future__ import annotations

import math
import secrets
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from mfo_client.api.models import TokenResponse
from mfo_client.devserver._errors import ApiError, send_error
from mfo_client.devserver._store import Store, TokenGrant
from mfo_client.devserver.settings import DevServerSettings

__all__ = ["SUBJECT_KEY", "AuthMiddleware", "Authenticator", "subject_of"]

SUBJECT_KEY = "mfo.subject"
STATIC_SUBJECT = "static"
ANONYMOUS_SUBJECT = "anonymous"
PROTECTED_PREFIX = "/api/"


def subject_of(scope: Scope) -> str:
    return str(scope.get(SUBJECT_KEY, ANONYMOUS_SUBJECT))


class Authenticator:
    """Checks bearer tokens and issues login tokens."""

    def __init__(self, settings: DevServerSettings, store: Store) -> None:
        self._settings = settings
        self._store = store

    def subject_for(self, token: str) -> str | None:
        if secrets.compare_digest(token.encode(), self._settings.token.encode()):
            return STATIC_SUBJECT
        return self._store.access_subject(token, time.time())

    def login(self, username: str, password: str) -> TokenResponse | None:
        expected_user, expected_password = self._settings.username, self._settings.password
        if expected_user is None or expected_password is None:
            return None
        user_ok = secrets.compare_digest(username.encode(), expected_user.encode())
        password_ok = secrets.compare_digest(password.encode(), expected_password.encode())
        return self._issue(username) if user_ok and password_ok else None

    def refresh(self, refresh_token: str) -> TokenResponse | None:
        subject = self._store.use_refresh_token(refresh_token, time.time())
        return None if subject is None else self._issue(subject)

    def expire_all(self) -> int:
        """End every login-issued access token now; refresh tokens keep working."""
        return self._store.expire_access_tokens(time.time())

    def _issue(self, subject: str) -> TokenResponse:
        now = time.time()
        grant = TokenGrant(
            subject=subject,
            access_token=secrets.token_urlsafe(32),
            refresh_token=secrets.token_urlsafe(32),
            expires_at=now + self._settings.token_ttl,
            refresh_expires_at=now + self._settings.refresh_ttl,
        )
        self._store.add_tokens(grant)
        return TokenResponse(
            access_token=grant.access_token,
            token_type="Bearer",  # noqa: S106  (the scheme name, not a secret)
            expires_in=math.ceil(self._settings.token_ttl),
            refresh_token=grant.refresh_token,
        )


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class AuthMiddleware:
    """Answer 401 (with `WWW-Authenticate: Bearer`) to `/api/*` calls without a valid token."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        subject = None if token is None else self.authenticator.subject_for(token)
        if subject is None:
            problem = "missing" if token is None else "invalid or expired"
            error = ApiError(
                401,
                "unauthorized",
                f"bearer token {problem}: send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": 'Bearer realm="mfo"'},
            )
            await send_error(error, scope, receive, send)
            return
        scope[SUBJECT_KEY] = subject
        await self.app(scope, receive, send)
