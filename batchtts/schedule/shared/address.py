"""Where the shared limits live: the Redis URL (checked, shown with its password masked) and the namespace.

The namespace is derived from the account, a digest of its API key (never the
key itself), plus an optional name, so two accounts never share limits by
accident and one account's jobs share them without configuring anything.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

#: Environment variable of ``--limits-url``.
LIMITS_URL_ENV = "BATCHTTS_LIMITS_URL"
SCHEMES = ("redis", "rediss", "unix")
#: Hex digits of the key's SHA-256 kept in the namespace: enough to keep accounts apart.
DIGEST_CHARS = 16
#: The bundled local server (``--local``) is an account of its own.
LOCAL_ACCOUNT = "local"


def check_limits_url(url: str) -> str:
    """``url`` when it is a Redis URL; a ValueError saying what one looks like (never echoing a password)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        raise ValueError(f"{masked_url(text)} is not a Redis URL (redis://[:PASSWORD@]HOST:PORT/DB)") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{masked_url(text)} is not a Redis URL: use redis://[:PASSWORD@]HOST:PORT/DB (or rediss://)")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{masked_url(text)} names no host: use redis://[:PASSWORD@]HOST:PORT/DB")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ValueError(f"{masked_url(text)}: the database ({db!r}) must be a number, as in redis://HOST:6379/0")
    return text


def masked_url(url: str) -> str:
    """``url`` with any password (and the user name's password part) replaced by ``****``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a URL that cannot be parsed>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


def limits_namespace(api_key: str | None, namespace: str | None = None) -> str:
    """The Redis key prefix of one account's limits: ``batchtts:limits:<digest>[:<namespace>]``.

    ``api_key`` None is the bundled local server's account.
    """
    account = LOCAL_ACCOUNT if api_key is None else hashlib.sha256(api_key.encode()).hexdigest()[:DIGEST_CHARS]
    suffix = f":{namespace}" if namespace else ""
    return f"batchtts:limits:{account}{suffix}"
