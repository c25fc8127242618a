from __future__ import annotations

import json
import logging

from shared.logging import bound_contextvars, configure_logging, get_logger, mask_email, redact


def test_emails_and_tokens_are_masked_everywhere():
    text = redact("mail Jane.Doe@Example.org with https://x/r/1?token=abc.def and eyJhbGciOi.eyJzdWIi.sig")
    assert "Jane.Doe" not in text and "abc.def" not in text and "eyJhbGciOi" not in text
    assert mask_email("jane.doe@example.org") in text.lower() or "<email:" in text
    assert mask_email(" JANE.DOE@example.org") == mask_email("jane.doe@example.org")


def test_json_logs_carry_context_and_never_an_address(capsys):
    configure_logging("venues", fmt="json")
    with bound_contextvars(request_id="req-1", correlation_id="corr-1"):
        get_logger("t").info("signup", email="someone@example.org", password="hunter2", note="for someone@example.org")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["request_id"] == "req-1" and record["correlation_id"] == "corr-1" and record["service"] == "venues"
    assert "someone@example.org" not in line and "hunter2" not in line
    assert record["email"].startswith("<email:")
    logging.getLogger().handlers.clear()
