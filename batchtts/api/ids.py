"""Request ids: valid for the API's pattern and traceable to the row.

Scheme: ``<row-id, sanitised, at most 64 chars>.<8 hex of blake2b(row id)>.<run token>.<attempt>``,
for example ``chapter-01.5d41402a.k3v9q2.1``. The readable prefix makes logs easy
to grep, the hash tells apart ids that sanitise alike, the run token (6 chars,
new per run) keeps ids unique across reruns, and the attempt number tells
retries apart. Every character is in ``[A-Za-z0-9._-]`` and the whole is at most
128 characters, as the API requires.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


def new_run_token() -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(6))


def id_digest(row_id: str) -> str:
    return hashlib.blake2b(row_id.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()


def request_id_for(row_id: str, run_token: str, attempt: int) -> str:
    readable = _UNSAFE.sub("_", row_id)[:64].strip("_") or "row"
    return f"{readable}.{id_digest(row_id)}.{run_token}.{attempt}"
