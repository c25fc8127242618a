"""A delivery sent twice (sender killed between the SMTP server's 250 and recording "sent")
carries the same Message-ID both times, so a receiving MTA or mailbox can drop the copy."""

from __future__ import annotations

from email import message_from_bytes, policy

from notifications.mailer import Composer, Links
from notifications.repository import new_delivery
from shared.auth import LinkSigner

LINKS = Links(LinkSigner("unit-secret", namespace="notifications"), portal="http://portal.test",
              public="http://notifications.test", ttl_confirm=3600, ttl_prefs=3600)


def composer() -> Composer:
    return Composer(LINKS, mail_from="IntercoTOUR <noreply@intercotour.local>",
                    unsubscribe_mailto="unsubscribe@intercotour.local")


def message_id(raw: bytes) -> str:
    return message_from_bytes(raw, policy=policy.default)["Message-ID"]


def test_the_message_id_is_derived_from_the_delivery_so_a_resend_is_the_same_message():
    one = new_delivery("reg:evt-1:ada@example.org", channel="email", kind="follow_confirm",
                       recipient="ada@example.org", data={"follower_id": "f-1", "regions": ["NOR"]})
    other = new_delivery("reg:evt-2:ada@example.org", channel="email", kind="follow_confirm",
                         recipient="ada@example.org", data={"follower_id": "f-1", "regions": ["NOR"]})
    first = message_id(composer().outgoing(one, stop=None).raw)
    again = message_id(composer().outgoing(one, stop=None).raw)  # another instance, after the kill
    assert first == again and first.startswith("<") and first.endswith("@intercotour.local>")
    assert message_id(composer().outgoing(other, stop=None).raw) != first
    assert "ada@example.org" not in first  # no address in a header that travels in logs and bounces


def test_list_mail_filled_from_a_shared_skeleton_gets_its_own_stable_message_id():
    cache: dict = {}
    deliveries = [new_delivery(f"digest:job-1:{who}@example.org", channel="email", kind="replay_digest",
                               recipient=f"{who}@example.org", data={"job": "job-1", "variant": "missed", "first_name": who})
                  for who in ("ada", "bob")]
    extra = {"replays": [{"title": "Plénière", "url": "https://v.example/1", "duration_s": 3600}], "city": "Rouen"}
    ids = [message_id(composer().outgoing(d, stop=None, extra=extra, cache=cache).raw) for d in deliveries]
    assert ids[0] != ids[1]
    assert ids[0] == message_id(composer().outgoing(deliveries[0], stop=None, extra=extra, cache={}).raw)
