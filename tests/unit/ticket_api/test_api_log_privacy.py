"""ticket_api.logs: a WeChat user's openid never reaches a log line, in a field or in a message."""

from __future__ import annotations

import hashlib
import json
import logging

from ticket_api.logs import JsonFormatter, log_subject


def test_wechat_subjects_are_logged_as_a_hash_of_the_openid() -> None:
    """``wx:<openid>`` becomes ``wx#`` and 16 hex digits of the openid's SHA-256; other subjects stay."""
    assert log_subject("wx:o-abc_1") == "wx#" + hashlib.sha256(b"o-abc_1").hexdigest()[:16]
    assert log_subject("P-001-G1") == "P-001-G1" and log_subject(None) is None


def test_the_formatter_scrubs_openids_from_messages_and_fields() -> None:
    """An openid in a message or an extra field is hashed; a field named like an openid is dropped."""
    record = logging.LogRecord("ticket_api", logging.INFO, __file__, 1, "login of %s", ("wx:o-secret-1",), None)
    record.subject = "wx:o-secret-1"
    record.openid = "o-secret-1"
    line = JsonFormatter().format(record)
    assert "o-secret-1" not in line
    d = json.loads(line)
    assert d["subject"].startswith("wx#") and d["message"].startswith("login of wx#") and "openid" not in d
