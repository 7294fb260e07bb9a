"""Offline Stripe for tests: an HTTP client for the official SDK that answers from canned
handlers (and records every request), plus webhook signing with Stripe's real scheme."""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

WEBHOOK_SECRET = "whsec_test_secret"
SECRET_KEY = "sk_test_fake"


@dataclass
class StripeCall:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


def _error(status: int, type_: str, message: str, code: str = "") -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": type_, "message": message, "code": code}}


class FakeStripe(stripe.HTTPClient):
    """Answers ``POST /v1/payment_intents`` and ``POST /v1/refunds`` like Stripe would, including
    idempotency: the same key returns the first response; the same key with other parameters is
    an ``idempotency_error``. ``fail_next`` queues an error answer (or a connection error)."""

    name = "fake"

    def __init__(self, refund_status: str = "pending", refund_ids: list[str] | None = None) -> None:
        super().__init__()
        self.refund_status = refund_status
        self.refund_ids = list(refund_ids or [])
        self.calls: list[StripeCall] = []
        self.failures: list[Any] = []
        self._by_key: dict[str, tuple[dict[str, str], tuple[int, dict[str, Any]]]] = {}

    def fail_next(
        self, status: int = 402, type_: str = "card_error", message: str = "Declined"
    ) -> None:
        self.failures.append(_error(status, type_, message, code="card_declined"))

    def fail_next_connection(self) -> None:
        self.failures.append(stripe.APIConnectionError("Network is down", should_retry=False))

    def calls_to(self, path: str) -> list[StripeCall]:
        return [c for c in self.calls if c.path == path]

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        form = dict(parse_qsl(post_data or "", keep_blank_values=True))
        call = StripeCall(method.upper(), urlsplit(url).path, dict(headers or {}), form)
        self.calls.append(call)
        status, body = self._answer(call)
        return json.dumps(body), status, {"Request-Id": f"req_{len(self.calls)}"}

    def _answer(self, call: StripeCall) -> tuple[int, dict[str, Any]]:
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        key = call.idempotency_key
        if key and key in self._by_key:
            form, response = self._by_key[key]
            if form != call.form:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters",
                )
            return response
        if call.method == "POST" and call.path == "/v1/payment_intents":
            response = (200, self._intent(call.form))
        elif call.method == "POST" and call.path == "/v1/refunds":
            response = (200, self._refund(call.form))
        else:
            response = _error(
                404, "invalid_request_error", f"Unrecognized request URL ({call.path})"
            )
        if key:
            self._by_key[key] = (call.form, response)
        return response

    def _intent(self, form: dict[str, str]) -> dict[str, Any]:
        intent_id = f"pi_test_{form['metadata[payment_id]']}"
        return {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_abc",
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
        }

    def _refund(self, form: dict[str, str]) -> dict[str, Any]:
        refund_ref = self.refund_ids.pop(0) if self.refund_ids else None
        return {
            "id": refund_ref or f"re_test_{form['metadata[refund_id]']}",
            "object": "refund",
            "amount": int(form["amount"]),
            "payment_intent": form["payment_intent"],
            "status": self.refund_status,
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
        }

    def close(self) -> None:
        pass


def use_fake_stripe(settings, monkeypatch, **kwargs: Any) -> FakeStripe:
    """Configure Stripe as the provider and route the SDK to a new ``FakeStripe``."""
    settings.PAYMENT_PROVIDER = "stripe"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_PAYMENT_METHOD_TYPES = ["card", "wechat_pay", "alipay"]
    fake = FakeStripe(**kwargs)
    monkeypatch.setattr("shop.payments.stripe.http_client", fake)
    return fake


def post_event(client, payload: bytes, signature: str | None = "sign"):
    """POST ``payload`` to the webhook endpoint, signed now unless a header is given."""
    headers = {}
    if signature == "sign":
        headers["Stripe-Signature"] = sign(payload)
    elif signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post(
        "/api/v1/webhooks/stripe", data=payload, content_type="application/json", headers=headers
    )


# --- Webhooks --------------------------------------------------------------------------------
def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` for ``payload``: ``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>">``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def event(event_id: str, type_: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": type_,
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()


def intent_obj(
    payment, *, status: str = "succeeded", intent_id: str | None = None, error: str | None = None
) -> dict[str, Any]:
    obj = {
        "id": intent_id or payment.provider_ref,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_received": payment.amount if status == "succeeded" else 0,
        "currency": payment.currency.lower(),
        "status": status,
        "metadata": {"order_id": str(payment.order_id), "payment_id": str(payment.id)},
    }
    if error:
        obj["last_payment_error"] = {"message": error, "code": "card_declined"}
    return obj


def refund_obj(
    refund_ref: str,
    intent_id: str,
    amount: int,
    *,
    refund_id: int | None = None,
    status: str = "succeeded",
) -> dict[str, Any]:
    return {
        "id": refund_ref,
        "object": "refund",
        "amount": amount,
        "payment_intent": intent_id,
        "status": status,
        "metadata": {"refund_id": str(refund_id)} if refund_id else {},
    }


def charge_refunded_obj(
    intent_id: str, amount: int, refunds: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": f"ch_{intent_id}",
        "object": "charge",
        "amount": amount,
        "amount_refunded": sum(r["amount"] for r in refunds),
        "paid": True,
        "status": "succeeded",
        "refunded": True,
        "payment_intent": intent_id,
        "refunds": {"object": "list", "data": refunds},
    }
