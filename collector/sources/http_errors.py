"""What went wrong with an HTTP request, in the words a problem report uses."""

from __future__ import annotations

import ssl


def tls_failure(error: BaseException) -> bool:
    """Whether a failed request failed on TLS (a certificate that does not verify, a broken
    handshake): httpx wraps the SSL error, so the whole cause chain is searched."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
