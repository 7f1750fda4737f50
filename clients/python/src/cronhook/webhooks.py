"""Verify a Cronhook request's signature (Standard Webhooks), no extra
dependency: the raw body, whatever it is (JSON, text or empty)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Mapping, Union

TOLERANCE_S = 5 * 60


class WebhookVerificationError(Exception):
    pass


def verify(
    headers: Mapping[str, str],
    body: Union[bytes, str],
    secret: str,
    *,
    now: float | None = None,
) -> None:
    """Raises WebhookVerificationError unless `body` was signed with
    `secret` (`whsec_…`) within five minutes of `now`."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = lower["webhook-timestamp"]
        signatures = lower["webhook-signature"]
    except KeyError as missing:
        raise WebhookVerificationError(f"missing header {missing}") from None
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_S:
        raise WebhookVerificationError("webhook-timestamp is too old or too new")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    data = body.encode() if isinstance(body, str) else body
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{timestamp}.".encode() + data, hashlib.sha256).digest()
    ).decode()
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return
    raise WebhookVerificationError("no signature matches")
