from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone


class User(AbstractUser):
    """Operators (staff, via the admin) and shoppers (via WeChat login) are both users; shopper
    profile data lives in shop.Customer."""


class AuthSession(models.Model):
    """One login on one device. Access tokens name their session, so revoking the session
    (logout, refresh-token reuse) invalidates every token issued for it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"session {self.pk} of user {self.user_id}"


class RefreshToken(models.Model):
    """A single-use refresh token, stored only as its SHA-256 hash. Refresh rotates: the
    presented token is marked used and a new one is issued; presenting a used token again
    revokes the whole session (it was stolen or replayed)."""

    session = models.ForeignKey(
        AuthSession, on_delete=models.CASCADE, related_name="refresh_tokens"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"refresh token {self.pk} of session {self.session_id}"


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an ``Idempotency-Key``, replayed for retries."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=512)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


class Notification(models.Model):
    """Stored before it is pushed: the socket is the fast path, this row is the truth. Clients
    that reconnect fetch everything after the last id they saw."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "id"], name="notification_user_cursor")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "dedupe_key"], name="notification_user_dedupe_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.user_id}"


class Announcement(models.Model):
    """An operator's broadcast, sent by the periodic job once ``send_at`` has passed."""

    class Audience(models.TextChoices):
        ALL_USERS = "all", "All active users"
        STAFF = "staff", "Staff only"

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.ALL_USERS)
    is_advertisement = models.BooleanField(
        default=False, help_text="Promotional content; delivered with an ad disclosure label."
    )
    send_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-send_at"]

    def __str__(self) -> str:
        return self.title


class OutboxEvent(models.Model):
    """A domain event, written in the transaction of the change that caused it (core/outbox.py).

    ``pending_subscribers`` names the subscribers that have no delivery row yet: the dispatcher
    turns them into ``OutboxDelivery`` rows after commit, so the paying transaction writes one row.
    """

    name = models.CharField(max_length=64)
    payload = models.JSONField()
    pending_subscribers = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], name="outbox_event_created"),
            models.Index(
                fields=["id"],
                condition=~Q(pending_subscribers=[]),
                name="outbox_event_undispatched",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"


class OutboxDelivery(models.Model):
    """One event for one subscriber: ``pending`` until its handler commits (``done``), retried
    with backoff on failure, ``dead`` after ``OUTBOX_MAX_ATTEMPTS`` until an operator retries it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        DEAD = "dead", "Dead"

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "outbox deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscriber"], name="outbox_delivery_event_subscriber_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="outbox_delivery_due",
            ),
            models.Index(
                fields=["delivered_at"], condition=Q(status="done"), name="outbox_delivery_done"
            ),
            models.Index(fields=["status", "subscriber"], name="outbox_delivery_status"),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber} <- event {self.event_id} ({self.status})"


class TopicSequence(models.Model):
    """The last ``seq`` given to a realtime topic's messages (``core.realtime.topic_next_seq``):
    stored so that it only ever increases, across processes and restarts."""

    topic = models.CharField(max_length=64, primary_key=True)
    seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.topic} at {self.seq}"
