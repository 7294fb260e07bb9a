"""Realtime topics: names of Channels groups and who may join them.

A socket always joins its user's group. Other topics (``community:<id>``, ``groupbuy:<id>``,
``leaderboard:<id>``) are joined on request; the app that owns the topic registers an authoriser
here (core imports no app: apps register themselves in their ``AppConfig.ready``).
"""

from collections.abc import Callable

from django.contrib.auth.base_user import AbstractBaseUser

TopicAuthoriser = Callable[[AbstractBaseUser, str], bool]
_authorisers: dict[str, TopicAuthoriser] = {}


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def session_group(session_id: int) -> str:
    """Every socket authenticated with one login session: closed when the session is revoked."""
    return f"session.{session_id}"


def topic_group(topic: str) -> str:
    """Channels group names allow only ASCII letters, digits, hyphens, underscores and periods."""
    kind, _, ident = topic.partition(":")
    return f"topic.{kind}.{ident}"


def register_topic(kind: str, authoriser: TopicAuthoriser) -> None:
    _authorisers[kind] = authoriser


def can_subscribe(user: AbstractBaseUser, topic: str) -> bool:
    kind, sep, ident = topic.partition(":")
    if not sep or not ident.isdigit() or len(ident) > 18:
        return False
    authoriser = _authorisers.get(kind)
    return bool(authoriser and authoriser(user, ident))


def registered_kinds() -> list[str]:
    return sorted(_authorisers)
