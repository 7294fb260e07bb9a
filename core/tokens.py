"""Access and refresh tokens.

Access tokens are short-lived JWTs (PyJWT, HS256) naming the user and their ``AuthSession``; each
request checks the session is still live, so logout revokes at once. Refresh tokens are opaque,
single-use, stored hashed, and rotate on every refresh; replaying a used one revokes the session.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.error_codes import AuthErrorCode
from core.errors import NotAuthenticated
from core.locks import lock_refresh_token
from core.models import AuthSession, RefreshToken, User
from core.realtime import session_group
from core.side_effects import push_on_commit

ALGORITHM = "HS256"
ISSUER = "groupbuy-backend"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    token_type: str = "Bearer"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _issue(session: AuthSession) -> TokenPair:
    now = timezone.now()
    access_exp = now + settings.ACCESS_TOKEN_TTL
    access = jwt.encode(
        {
            "sub": str(session.user_id),
            "sid": session.id,
            "iat": int(now.timestamp()),
            "exp": int(access_exp.timestamp()),
            "iss": ISSUER,
            "jti": uuid.uuid4().hex,
        },
        settings.JWT_SIGNING_KEY,
        algorithm=ALGORITHM,
    )
    raw_refresh = secrets.token_urlsafe(32)
    RefreshToken.objects.create(session=session, token_hash=_hash(raw_refresh))
    return TokenPair(
        access_token=access,
        refresh_token=raw_refresh,
        access_expires_at=access_exp,
        refresh_expires_at=session.expires_at,
    )


def session_start(*, user: User, user_agent: str = "") -> TokenPair:
    with transaction.atomic():
        session = AuthSession.objects.create(
            user=user,
            expires_at=timezone.now() + settings.REFRESH_TOKEN_TTL,
            user_agent=user_agent[:255],
        )
        return _issue(session)


def session_refresh(*, refresh_token: str) -> TokenPair:
    """Rotate: the presented refresh token is spent and a new pair is issued."""
    now = timezone.now()
    with transaction.atomic():
        token = lock_refresh_token(token_hash=_hash(refresh_token))
        if token is None:
            raise NotAuthenticated(
                "Unknown refresh token.", code=AuthErrorCode.REFRESH_TOKEN_INVALID
            )
        session = token.session
        if session.revoked_at is not None:
            raise NotAuthenticated("This session was ended.", code=AuthErrorCode.TOKEN_REVOKED)
        if session.expires_at <= now:
            raise NotAuthenticated(
                "The refresh token has expired.", code=AuthErrorCode.TOKEN_EXPIRED
            )
        if token.used_at is None:
            token.used_at = now
            token.save(update_fields=["used_at"])
            return _issue(session)
        _revoke(session, reason="refresh_reuse", now=now)
    # A spent token presented again: the revocation above is committed, then the caller is told.
    raise NotAuthenticated(
        "This refresh token was already used; the session has been ended for safety.",
        code=AuthErrorCode.REFRESH_TOKEN_REUSED,
    )


def _revoke(session: AuthSession, *, reason: str, now: datetime) -> None:
    revoked = AuthSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason
    )
    if revoked:
        # Open sockets of this session are closed too, not only new requests refused.
        push_on_commit(session_group(session.pk), {"reason": reason}, handler="session.revoked")


def session_revoke(*, session_id: int, reason: str = "logout") -> None:
    _revoke(AuthSession(pk=session_id), reason=reason, now=timezone.now())


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: int


def access_token_decode(token: str) -> AccessClaims:
    """Verify signature, expiry and issuer; does not touch the database."""
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SIGNING_KEY,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "sid", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated(
            "The access token has expired.", code=AuthErrorCode.TOKEN_EXPIRED
        ) from exc
    except jwt.InvalidTokenError as exc:
        raise NotAuthenticated(
            "The access token is invalid.", code=AuthErrorCode.TOKEN_INVALID
        ) from exc
    try:
        return AccessClaims(user_id=int(claims["sub"]), session_id=int(claims["sid"]))
    except (TypeError, ValueError) as exc:
        raise NotAuthenticated(
            "The access token is invalid.", code=AuthErrorCode.TOKEN_INVALID
        ) from exc


def access_token_authenticate(token: str) -> tuple[User, int]:
    """The user and session id behind a valid, unrevoked access token, else NotAuthenticated."""
    claims = access_token_decode(token)
    session = (
        AuthSession.objects.select_related("user")
        .filter(pk=claims.session_id, user_id=claims.user_id)
        .first()
    )
    if session is None or session.revoked_at is not None:
        raise NotAuthenticated("This session was ended.", code=AuthErrorCode.TOKEN_REVOKED)
    if not session.user.is_active:
        raise NotAuthenticated("This account is disabled.", code=AuthErrorCode.ACCOUNT_DISABLED)
    return session.user, session.id
