"""Pure rules: notification keys, backoff schedules, SMTP reply classes, SSRF checks, webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta

import pytest

from notifications.config import Settings
from notifications.domain import (email_retry_delay, locale_of, notification_key, reminder_due,
                                  smtp_failure_is_permanent, webhook_retry_delay)
from notifications.webhooks import check_url, new_secret, sign, signed_headers
from shared.errors import Unprocessable


def test_notification_key_is_stable_and_distinct_per_event_recipient_and_kind():
    key = notification_key("evt-1", "Ada@Example.org", "replay_digest")
    assert key == notification_key("evt-1", "ada@example.org", "replay_digest")
    assert len({key, notification_key("evt-2", "ada@example.org", "replay_digest"),
                notification_key("evt-1", "bob@example.org", "replay_digest"),
                notification_key("evt-1", "ada@example.org", "reminder")}) == 4


def test_email_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(7)
    delays = [email_retry_delay(n, base=30, cap=3600, rng=rng) for n in range(1, 10)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(3600, 30 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 3600 and delays[3] > delays[0]


def test_webhook_schedule_is_followed_then_exhausted():
    schedule = [5, 300, 1800]
    rng = random.Random(1)
    assert 4.5 <= webhook_retry_delay(1, schedule, rng) <= 5.5
    assert 270 <= webhook_retry_delay(2, schedule, rng) <= 330
    assert webhook_retry_delay(4, schedule, rng) is None
    assert Settings().webhook_retry_schedule == [5, 300, 1800, 7200, 18000, 36000]


@pytest.mark.parametrize(("code", "permanent"), [(550, True), (554, True), (451, False), (421, False), (None, False)])
def test_only_5xx_replies_are_permanent(code, permanent):
    assert smtp_failure_is_permanent(code) is permanent


def test_locale_defaults_to_french():
    assert (locale_of("en-GB"), locale_of("fr"), locale_of(None), locale_of("de")) == ("en", "fr", "fr", "fr")


def test_reminder_is_the_day_before_and_dropped_when_too_late():
    starts = datetime(2026, 5, 12, 7, 0, tzinfo=UTC)
    assert reminder_due(starts, 24, starts - timedelta(days=3)) == starts - timedelta(days=1)
    assert reminder_due(starts, 24, starts - timedelta(hours=2)) is None


def fake_resolver(addresses):
    async def resolver(host, port):
        return addresses
    return resolver


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.4", "172.16.9.9", "169.254.169.254",
                                     "::1", "fe80::1", "::ffff:127.0.0.1", "fc00::5", "0.0.0.0", "100.64.0.1"])
async def test_webhook_urls_resolving_to_internal_ranges_are_refused(address):
    settings = Settings(mode="production", link_secret="x" * 32)
    with pytest.raises(Unprocessable) as refused:
        await check_url("https://partner.example/hook", settings=settings,
                        resolver=fake_resolver(["93.184.216.34", address]))
    assert "url" in refused.value.fields


async def test_webhook_url_rules_by_mode():
    production = Settings(mode="production", link_secret="x" * 32, webhook_allow_private=True)
    public = fake_resolver(["93.184.216.34"])
    await check_url("https://partner.example/hook", settings=production, resolver=public)
    with pytest.raises(Unprocessable, match="https"):
        await check_url("http://partner.example/hook", settings=production, resolver=public)
    # The private-range escape hatch only works in local mode.
    with pytest.raises(Unprocessable):
        await check_url("https://partner.example/hook", settings=production, resolver=fake_resolver(["127.0.0.1"]))
    local = Settings(mode="local", webhook_allow_private=True)
    await check_url("http://127.0.0.1:9/hook", settings=local, resolver=fake_resolver(["127.0.0.1"]))
    with pytest.raises(Unprocessable):
        await check_url("http://127.0.0.1:9/hook", settings=Settings(mode="local"), resolver=fake_resolver(["127.0.0.1"]))
    with pytest.raises(Unprocessable):
        await check_url("ftp://partner.example/x", settings=local, resolver=public)
    with pytest.raises(Unprocessable):
        await check_url("https://user:pw@partner.example/x", settings=local, resolver=public)


def test_signature_matches_the_standard_webhooks_reference_vector():
    # From the Standard Webhooks specification's test suite.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_verify_with_the_decoded_secret():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    body = '{"type":"venues.stop.held.v1"}'
    headers = signed_headers(secret, "msg-1", body, timestamp=1700000000)
    expected = base64.b64encode(hmac.new(base64.b64decode(secret[6:]), f"msg-1.1700000000.{body}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == ("msg-1", "1700000000")
