"""Realtime topics: names of Channels groups and who may join them.

A socket always joins its user's group. Other topics (``community:<id>``, ``groupbuy:<id>``,
``leaderboard:<id>``) are joined on request; the app that owns the topic registers an authoriser
here (core imports no app: apps register themselves in their ``AppConfig.ready``).

Every message pushed to a topic carries the topic's ``seq``: stored (``TopicSequence``), one more
than the topic's previous message. A client that sees a gap (a message lost in a full channel
queue, or a reconnect) refetches the topic's snapshot, which names the ``seq`` it is current to.
"""

from collections.abc import Callable

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection

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


# One statement, outside any caller's transaction (it runs after commit): the row lock lasts one
# round trip, so concurrent publishers of a topic never wait for each other's transactions.
_NEXT_SEQ_SQL = """
INSERT INTO core_topicsequence (topic, seq) VALUES (%s, 1)
ON CONFLICT (topic) DO UPDATE SET seq = core_topicsequence.seq + 1
RETURNING seq
"""


def topic_next_seq(topic: str) -> int:
    """Take the next ``seq`` of ``topic`` (1 for its first message)."""
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SEQ_SQL, [topic])
        return int(cursor.fetchone()[0])


def topic_last_seq(topic: str) -> int:
    """The ``seq`` of the topic's last message (0 before the first): what a snapshot is current
    to, read before the snapshot's rows so a message published meanwhile is seen again."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq FROM core_topicsequence WHERE topic = %s", [topic])
        row = cursor.fetchone()
    return int(row[0]) if row else 0
