"""Credentials out of messages: what a user typed or a target answered may carry a password
(``https://admin:secret@pdu-17/``), and no log line or error repeats it."""

from __future__ import annotations

import logging
import re
import traceback

# scheme://user:password@ -> scheme://user:***@ ; scheme://token@ -> scheme://***@
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")


def _masked(match: re.Match[str]) -> str:
    user, colon, _ = match.group("userinfo").partition(":")
    shown_user = user if colon else "***"  # a lone userinfo may be the token itself
    return f"{match.group('scheme')}{shown_user}{':***' if colon else ''}@"


def redacted(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(_masked, text)


def install_log_redaction() -> None:
    """Every log record of this process, and its traceback, with URL passwords redacted: a
    source's error may quote the URL it was given, credentials and all."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def redacting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        message = record.getMessage()
        clean = redacted(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redacted(text)
        return record

    redacting.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)
