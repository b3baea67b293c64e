"""HMS-SYS style service tokens: HS256 JWTs signed with a secret shared by caller and backend."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The caller did not prove who it is; the message is safe to send back."""


def generate_secret() -> str:
    return secrets.token_urlsafe(48)


def mint_token(secret: str, subject: str, ttl_seconds: int) -> str:
    now = int(time.time())
    return jwt.encode({"sub": subject, "iat": now, "exp": now + ttl_seconds}, secret, algorithm=ALGORITHM)


def verify_authorization(header: str | None, secret: str) -> dict[str, Any]:
    """The claims of the bearer token in an Authorization header, or InvalidToken saying why not."""
    if not header:
        raise InvalidToken("missing Authorization header (expected: Bearer <token>)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization header must be: Bearer <token>")
    try:
        # A token without exp would never expire; HMS tokens always carry one.
        return jwt.decode(token.strip(), secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.InvalidTokenError as err:
        raise InvalidToken(f"invalid token: {err}") from None
