"""Staff accounts, sign-in, sessions and API tokens (no web framework here).

* Passwords are hashed with argon2id; hashes are upgraded on sign-in when parameters change.
* Sign-in is rate-limited per email and per client address from the database, so it
  holds across processes.
* Sessions and API tokens are random secrets handed out once; only their SHA-256 is
  stored, so a database leak gives no working cookie or token. Both can be revoked.
* An owner or an admin invites people and resets passwords with one-time links
  (:class:`StaffLink`): random, hashed at rest, expiring, and spent by the first use.
  An admin cannot make an owner or touch an owner's account (:func:`check_team_change`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ringback.models import ApiToken, LoginAttempt, StaffLink, StaffSession, StaffUser
from ringback.roles import ROLE_LABELS, ROLES, can, role_can

__all__ = ["ROLES", "ROLE_LABELS", "can", "role_can"]
MIN_PASSWORD_LENGTH = 12
SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 20
INVITE_LIFETIME = timedelta(days=3)
RESET_LIFETIME = timedelta(hours=24)
TOKEN_PREFIX = "rb_"  # noqa: S105 - a public prefix, not a secret
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()


class AccountError(ValueError):
    """An account request that cannot be done; the message names the field."""


class NotAllowed(AccountError):
    """The acting person's role may not do this (answered 403); the message says why."""


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise AccountError(f"email: expected an address like name@clinic.example, got {email!r}")
    return value


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: use at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise AccountError("password: must not start or end with spaces")


def hash_password(password: str) -> str:
    return str(_HASHER.hash(password))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(StaffUser)) or 0)


def find_user(session: Session, email: str) -> StaffUser | None:
    return session.scalars(
        select(StaffUser).where(StaffUser.email == email.strip().lower())
    ).one_or_none()


def check_access(role: str, location_ids: list[str], known_locations: set[str]) -> list[str]:
    """The locations an account of ``role`` keeps (none for an owner or an admin: they
    see all)."""
    if role not in ROLES:
        raise AccountError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    unknown = sorted(set(location_ids) - known_locations)
    if unknown:
        raise AccountError(f"location: no location {unknown[0]!r} in the locations file")
    if role_can(role, "all_locations"):
        return []
    if not location_ids:
        raise AccountError(f"location: a {role} account needs at least one location")
    return sorted(set(location_ids))


def check_team_change(
    acting_role: str, *, target_role: str | None = None, new_role: str | None = None
) -> None:
    """Raise :class:`NotAllowed` unless ``acting_role`` may change an account of
    ``target_role`` (None: a new one) into ``new_role`` (None: the role stays).
    An admin manages the team except owners: no making owners, no touching theirs."""
    if not role_can(acting_role, "team"):
        raise NotAllowed("role: the team is managed by an owner or an admin")
    if role_can(acting_role, "manage_owners"):
        return
    if new_role == "owner":
        raise NotAllowed("role: only an owner can make someone an owner")
    if target_role == "owner":
        raise NotAllowed("user: only an owner can change an owner's account")


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: str,
    password: str,
    location_ids: list[str],
    known_locations: set[str],
    now: datetime,
) -> StaffUser:
    address = normalize_email(email)
    kept = check_access(role, location_ids, known_locations)
    if not name.strip():
        raise AccountError("name: must not be empty")
    check_password(password)
    if find_user(session, address) is not None:
        raise AccountError(f"email: {address} already has an account")
    user = StaffUser(
        email=address,
        name=name.strip(),
        role=role,
        location_ids=kept,
        password_hash=hash_password(password),
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    return user


def reset_password(session: Session, email: str, password: str, now: datetime) -> StaffUser:
    user = find_user(session, email)
    if user is None:
        raise AccountError(f"email: no account for {email.strip().lower()}")
    check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    # A new password signs out every browser that knew the old one and revokes every API
    # token made while it was in use: a reset is what follows a leak.
    revoke_user_access(session, user.id, now)
    return user


def authenticate(
    session: Session, email: str, password: str, address: str, now: datetime
) -> StaffUser | None:
    """The user for these credentials, or None (the failure is recorded: commit the
    session either way). Raises :class:`LoginThrottled` while sign-in is blocked."""
    key = email.strip().lower()[:254]
    since = now - THROTTLE_WINDOW
    by_email = session.scalar(
        select(func.count()).where(LoginAttempt.email == key, LoginAttempt.at >= since)
    )
    by_address = session.scalar(
        select(func.count()).where(LoginAttempt.address == address, LoginAttempt.at >= since)
    )
    if (by_email or 0) >= MAX_FAILURES_PER_EMAIL or (by_address or 0) >= MAX_FAILURES_PER_ADDRESS:
        oldest = session.scalar(
            select(func.min(LoginAttempt.at)).where(
                (LoginAttempt.email == key) | (LoginAttempt.address == address),
                LoginAttempt.at >= since,
            )
        )
        wait = (oldest + THROTTLE_WINDOW - now) if oldest else THROTTLE_WINDOW
        raise LoginThrottled(max(1, int(wait.total_seconds())))
    user = find_user(session, key)
    # Verify against a dummy hash when there is no user, so timing does not tell.
    valid = _verify(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not valid or not user.active:
        session.add(LoginAttempt(email=key, address=address[:64], at=now))
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == key))
    return user


_DUMMY_HASH = hash_password("not-a-real-password-" + secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # goes in the cookie, never stored
    csrf_token: str


def start_session(session: Session, user: StaffUser, now: datetime) -> NewSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=_digest(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_MAX,
        )
    )
    return NewSession(token=token, csrf_token=csrf)


def find_session(session: Session, token: str, now: datetime) -> StaffSession | None:
    """The live session for a cookie token, extending its idle timer; None when expired."""
    found = session.scalars(
        select(StaffSession).where(StaffSession.token_hash == _digest(token))
    ).one_or_none()
    if found is None:
        return None
    if now >= found.expires_at or now - found.last_seen_at >= SESSION_IDLE:
        session.delete(found)
        return None
    if not found.user.active:
        return None
    if now - found.last_seen_at > timedelta(minutes=1):
        found.last_seen_at = now
    return found


def end_session(session: Session, token: str) -> None:
    session.execute(delete(StaffSession).where(StaffSession.token_hash == _digest(token)))


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    token: str  # shown once


def create_api_token(session: Session, user: StaffUser, name: str, now: datetime) -> NewToken:
    if not name.strip():
        raise AccountError("name: give the token a name, e.g. the tool that will use it")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token = ApiToken(
        name=name.strip()[:120],
        prefix=secret[:10],
        token_hash=_digest(secret),
        user_id=user.id,
        created_at=now,
    )
    session.add(token)
    session.flush()
    return NewToken(id=token.id, token=secret)


def find_api_token(session: Session, secret: str, now: datetime) -> ApiToken | None:
    token = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == _digest(secret))
    ).one_or_none()
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return token


def revoke_api_token(session: Session, token_id: int, now: datetime) -> bool:
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = now
    return True


def revoke_user_access(session: Session, user_id: int, now: datetime) -> None:
    """End every session of the user and revoke every API token of theirs, at once: the
    next request with any of them is refused. Joins the caller's transaction."""
    session.execute(delete(StaffSession).where(StaffSession.user_id == user_id))
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def api_tokens(session: Session, user_id: int | None) -> list[ApiToken]:
    """Tokens newest first: one user's, or everyone's when ``user_id`` is None."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


# --- the team: invitations, roles, deactivation, one-time links ------------------------------


def users(session: Session) -> list[StaffUser]:
    return list(
        session.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.name))
    )


def _user(session: Session, user_id: int) -> StaffUser:
    user = session.get(StaffUser, user_id)
    if user is None:
        raise AccountError(f"user: no account {user_id}")
    return user


def _other_active_owners(session: Session, user_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                StaffUser.role == "owner", StaffUser.active.is_(True), StaffUser.id != user_id
            )
        )
        or 0
    )


def change_access(
    session: Session,
    user_id: int,
    *,
    role: str,
    location_ids: list[str],
    known_locations: set[str],
    acting_role: str,
) -> StaffUser:
    """Set an account's role and locations; the last active owner stays an owner."""
    user = _user(session, user_id)
    check_team_change(acting_role, target_role=user.role, new_role=role)
    kept = check_access(role, location_ids, known_locations)
    if user.role == "owner" and role != "owner" and _other_active_owners(session, user_id) == 0:
        raise AccountError("role: this is the only owner; make someone else an owner first")
    user.role = role
    user.location_ids = kept
    return user


def deactivate_user(
    session: Session, user_id: int, *, acting_user_id: int | None, acting_role: str, now: datetime
) -> StaffUser:
    """Switch an account off: it cannot sign in, its sessions end and its tokens are revoked.
    ``acting_user_id`` is None for the operator at the command line."""
    user = _user(session, user_id)
    check_team_change(acting_role, target_role=user.role)
    if user_id == acting_user_id:
        raise AccountError("user: you cannot deactivate your own account")
    if not user.active:
        raise AccountError(f"user: {user.email} is already deactivated")
    if user.role == "owner" and _other_active_owners(session, user_id) == 0:
        raise AccountError(
            f"user: {user.email} is the only owner; make someone else an owner first"
        )
    user.active = False
    revoke_user_access(session, user_id, now)
    # Links handed out for the account must not bring it back.
    session.execute(delete(StaffLink).where(StaffLink.user_id == user_id))
    return user


def reactivate_user(session: Session, user_id: int, *, acting_role: str) -> StaffUser:
    """Let a deactivated account sign in again (its old sessions and tokens stay dead)."""
    user = _user(session, user_id)
    check_team_change(acting_role, target_role=user.role)
    if user.active:
        raise AccountError(f"user: {user.email} is already active")
    user.active = True
    return user


@dataclass(frozen=True, slots=True)
class NewLink:
    token: str  # goes in the link, shown or sent once, never stored
    email: str
    kind: str
    expires_at: datetime


def _new_link(
    session: Session,
    *,
    kind: str,
    email: str,
    role: str,
    location_ids: list[str],
    user_id: int | None,
    created_by: int | None,
    now: datetime,
) -> NewLink:
    token = secrets.token_urlsafe(32)
    expires = now + (INVITE_LIFETIME if kind == "invite" else RESET_LIFETIME)
    # A new link replaces any unused one for the same person: only the latest works.
    session.execute(
        delete(StaffLink).where(
            StaffLink.kind == kind, StaffLink.email == email, StaffLink.used_at.is_(None)
        )
    )
    session.add(
        StaffLink(
            token_hash=_digest(token),
            kind=kind,
            email=email,
            role=role,
            location_ids=location_ids,
            user_id=user_id,
            created_by=created_by,
            created_at=now,
            expires_at=expires,
        )
    )
    session.flush()
    return NewLink(token=token, email=email, kind=kind, expires_at=expires)


def invite(
    session: Session,
    *,
    email: str,
    role: str,
    location_ids: list[str],
    known_locations: set[str],
    created_by: int | None,
    acting_role: str,
    now: datetime,
) -> NewLink:
    """A one-time link for a new person to name themselves and choose a password."""
    check_team_change(acting_role, new_role=role)
    address = normalize_email(email)
    kept = check_access(role, location_ids, known_locations)
    if find_user(session, address) is not None:
        raise AccountError(f"email: {address} already has an account")
    return _new_link(
        session,
        kind="invite",
        email=address,
        role=role,
        location_ids=kept,
        user_id=None,
        created_by=created_by,
        now=now,
    )


def reset_link(
    session: Session, user_id: int, *, created_by: int | None, acting_role: str, now: datetime
) -> NewLink:
    """A one-time link for an active account to set a new password (an admin's link for an
    owner would hand the admin the owner's account, so it is refused)."""
    user = _user(session, user_id)
    check_team_change(acting_role, target_role=user.role)
    if not user.active:
        raise AccountError(f"user: {user.email} is deactivated; reactivate the account first")
    return _new_link(
        session,
        kind="reset",
        email=user.email,
        role=user.role,
        location_ids=list(user.location_ids or []),
        user_id=user.id,
        created_by=created_by,
        now=now,
    )


def pending_invites(session: Session, now: datetime) -> list[StaffLink]:
    return list(
        session.scalars(
            select(StaffLink)
            .where(
                StaffLink.kind == "invite",
                StaffLink.used_at.is_(None),
                StaffLink.expires_at > now,
            )
            .order_by(StaffLink.created_at.desc())
        )
    )


def find_link(session: Session, token: str, now: datetime) -> StaffLink | None:
    """The link for this token while it is unused and unexpired, else None."""
    link = session.scalars(
        select(StaffLink).where(StaffLink.token_hash == _digest(token))
    ).one_or_none()
    if link is None or link.used_at is not None or now >= link.expires_at:
        return None
    return link


def use_link(
    session: Session,
    token: str,
    *,
    name: str,
    password: str,
    known_locations: set[str],
    now: datetime,
) -> StaffUser:
    """Spend a link: an invitation makes the account, a reset sets the new password and
    signs out every browser. Works once, even when two requests race for it."""
    link = find_link(session, token, now)
    if link is None:
        raise AccountError("link: this link has expired or was already used; ask for a new one")
    check_password(password)
    if link.kind == "invite" and not name.strip():
        raise AccountError("name: must not be empty")
    spent = session.execute(
        update(StaffLink)
        .where(StaffLink.id == link.id, StaffLink.used_at.is_(None))
        .values(used_at=now)
    )
    if getattr(spent, "rowcount", 0) != 1:
        raise AccountError("link: this link has expired or was already used; ask for a new one")
    if link.kind == "invite":
        return create_user(
            session,
            email=link.email,
            name=name,
            role=link.role,
            password=password,
            location_ids=list(link.location_ids or []),
            known_locations=known_locations,
            now=now,
        )
    user = _user(session, link.user_id or 0)
    if not user.active:
        raise AccountError("link: this account was deactivated")
    return reset_password(session, user.email, password, now)
