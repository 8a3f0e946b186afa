"""Text that is safe to print: store and data URLs without their secrets, file names without
control characters.

Every store URL (``tune.storage``, ``tracking.uri``), data URL (``genreflow data get URL``) and
user-supplied file name that reaches a message, a log, an MLflow param or tag, or a file goes
through here first. :func:`redact` fails closed: what it cannot read is masked, never echoed.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

#: Query or fragment keys whose values are credentials: passwords, tokens, API keys, and the
#: signatures and credentials of presigned URLs (S3's ``X-Amz-Signature``/``X-Amz-Credential``/
#: ``X-Amz-Security-Token``, GCS's ``X-Goog-Signature``, Azure SAS ``sig``).
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|sig|credential|auth|session|cookie", re.I)
#: A user name shown beside a masked password (anything else in the user part is masked).
_PLAIN_USER = re.compile(r"[\w.+%-]{1,128}")
#: A ``key=value`` pair of a query string.
_QUERY_PAIR = re.compile(r"[?#&;][^=&;#@]*=")
#: URL-like words inside free text (exception messages that echo a URL).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact(url: object) -> str:
    """``url`` with its credentials masked, safe to log.

    The user part (everything between ``://`` and the *last* ``@``, so that a password
    holding an unescaped ``@``, ``/`` or ``?`` is still hidden) becomes ``user:***`` when it
    has a password and a plain user name, else ``***`` (a bare ``https://TOKEN@host`` is a
    credential too). Query and fragment values of password-, token-, key- and signature-like
    keys become ``***``. Control characters are escaped. Never raises; never echoes what it
    cannot read.
    """
    try:
        return printable(_redact(str(url)))
    except Exception:  # noqa: BLE001  (fail closed)
        return MASK


def bare_url(url: object) -> str:
    """``url`` without user:password@, ?query and #fragment (they may carry secrets), its
    control characters escaped: what a download's origin may show in messages, logs and
    ``SOURCE.json``. A URL that does not parse is masked by :func:`redact` (fails closed)
    before the query is cut."""
    try:
        p = urlsplit(str(url))
        bare = urlunsplit((p.scheme, p.netloc.rpartition("@")[2], p.path, "", ""))
    except ValueError:
        bare = redact(str(url)).split("#", 1)[0].split("?", 1)[0]
    return printable(bare)


def holds_secret(url: str) -> bool:
    """Whether ``url`` carries a password (``user:password@``) or a secret query value."""
    rest = url.partition("://")[2] or url
    userinfo, at, _ = rest.rpartition("@")
    if at and ":" in userinfo:
        return True
    return _mask_params(url) != url


def scrub(text: object, *urls: str) -> str:
    """``text`` (an exception's message, say) with each of ``urls``, their passwords, and any
    other URL it quotes redacted."""
    out = str(text)
    secrets = [x for url in filter(None, urls) for x in _secrets(url) if len(x) >= 3]
    for url in filter(None, urls):
        out = out.replace(url, redact(url))
    for secret in sorted(secrets, key=len, reverse=True):
        out = out.replace(secret, MASK)
    out = _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), out)
    # a driver may quote a piece of a secret (the host it parsed out of a password with an @)
    return re.sub(r"[^\s'\"]{4,}", lambda m: MASK if any(m.group(0) in x for x in secrets)
                  else m.group(0), out)


def shown(source: object) -> str:
    """A data source as it may be printed or recorded: a URL redacted, a path escaped."""
    text = str(source)
    return redact(text) if "://" in text else printable(text)


def printable(text: object) -> str:
    """``text`` with control and other non-printable characters shown as escapes (``\\x1b``,
    ``\\n``, ``\\u2028``): a file name cannot forge log lines or colour a terminal."""
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in str(text))


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, rest = rest.rpartition("@")
    if at and _QUERY_PAIR.search(userinfo):  # an @ inside a query value: nothing is certain
        return f"{scheme}{sep}{MASK}"
    if at:
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:{MASK}" if colon and _PLAIN_USER.fullmatch(user) else MASK
        rest = f"{shown}@{rest}"
    return _mask_params(f"{scheme}{sep}{rest}")


def _mask_params(url: str) -> str:
    """``url`` with secret-like query and fragment values masked."""
    start = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
    if start < 0:
        return url
    head, tail = url[:start], url[start:]
    return head + re.sub(r"([?#&;])([^=&;#]*)=([^&;#]*)",
                         lambda m: m.group(0) if not _SECRET_KEY.search(unquote(m.group(2)))
                         else f"{m.group(1)}{m.group(2)}={MASK}", tail)


def _secrets(url: str) -> list[str]:
    """What in ``url`` may be a secret, read both ways: the password between the user name's
    ``:`` and the last ``@``, and the values of secret-like query keys read from the first
    ``?`` (one of them holds the secret when the other reading is wrong)."""
    rest = url.partition("://")[2] or url
    userinfo, at, _ = rest.rpartition("@")
    found = [userinfo.partition(":")[2]] if at and ":" in userinfo else []
    start = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
    if start >= 0:
        found += [m.group(2) for m in re.finditer(r"[?#&;]([^=&;#]*)=([^&;#]*)", url[start:])
                  if _SECRET_KEY.search(unquote(m.group(1)))]
    return found


_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
NAME_CHARS = 80  # characters of a name made by :func:`file_stem`, before its hash


def file_stem(text: str) -> str:
    """``text`` (a clip id such as ``rock/Some Artist/01 Song``) as a file name stem: ASCII
    letters, digits, ``.``, ``_`` and ``-`` only, no leading dot, at most :data:`NAME_CHARS`
    characters plus, when anything was changed, 8 hex digits of its SHA-1 so that different
    ids never share a name. A GTZAN id (``blues.00000``) is returned as it is."""
    safe = _UNSAFE_IN_NAME.sub("_", text).lstrip(".")[:NAME_CHARS] or "_"
    if safe == text:
        return text
    return f"{safe}-{hashlib.sha1(text.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
