"""Outbound URLs (webhook destinations and audio sources): the address guard and the audio fetch.

The guard refuses URLs that are not http(s), or whose host resolves to a private, loopback, link-local, multicast
or reserved address (so a job cannot make the server probe its own network), unless private addresses are allowed.
It runs at submission (a 400) and again right before each connection, after DNS resolution, since a name may
resolve differently later.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from auricle.errors import AudioDecodeError, TooLargeError, UrlError

__all__ = ["check_url", "fetch_audio_url", "url_filename"]

logger = logging.getLogger(__name__)

_NOT_AUDIO = ("text/", "application/json", "application/xml", "application/xhtml", "application/javascript")


def _refused(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url(url: str, *, allow_private: bool, param: str = "url") -> None:
    """Refuse ``url`` unless it is http(s) and every address its host resolves to is public (or ``allow_private``).

    Raises:
        UrlError: not http(s), no host, the name does not resolve, or a refused address.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise UrlError(f"'{param}' is not a valid URL", param=param) from None
    if parts.scheme not in ("http", "https") or not host:
        raise UrlError(f"'{param}' must be an http or https URL", param=param)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UrlError(f"'{param}' is unreachable: the host {host} does not resolve", param=param) from None
    for info in infos:
        address = str(info[4][0])
        if _refused(address):
            raise UrlError(
                f"'{param}' refused: {host} is a private, loopback or link-local address ({address});"
                " set AURICLE_URL_ALLOW_PRIVATE=true to allow it",
                param=param,
            )


def url_filename(url: str) -> str:
    """A file name for an audio URL: the last path segment, or ``audio``."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).strip()
    return name[:200] or "audio"


def fetch_audio_url(
    url: str,
    target: Path,
    *,
    max_bytes: int,
    timeout_s: float,
    max_redirects: int,
    allow_private: bool,
) -> Path:
    """Download ``url`` into ``target``, following up to ``max_redirects`` redirects (each checked by the guard),
    within ``timeout_s`` seconds in all and ``max_bytes``.

    Raises:
        UrlError: refused address, unreachable, too many redirects, an error status or the time limit.
        TooLargeError: the body is larger than ``max_bytes``.
        AudioDecodeError: the answer is a web page or other non-audio content, or empty.
    """
    deadline = time.monotonic() + timeout_s
    current = url
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            for _ in range(max_redirects + 1):
                check_url(current, allow_private=allow_private)
                with client.stream("GET", current) as answer:
                    if answer.is_redirect and "location" in answer.headers:
                        current = urljoin(current, answer.headers["location"])
                        continue
                    if answer.status_code >= 400:
                        raise UrlError(f"fetching the audio URL failed: HTTP {answer.status_code}", param="url")
                    kind = answer.headers.get("content-type", "").lower()
                    if kind.startswith(_NOT_AUDIO):
                        raise AudioDecodeError(f"the URL did not return audio (content type {kind.split(';')[0]})")
                    declared = answer.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise _too_large(max_bytes)
                    size = 0
                    with target.open("wb") as out:
                        for chunk in answer.iter_bytes(1 << 16):
                            size += len(chunk)
                            if size > max_bytes:
                                raise _too_large(max_bytes)
                            if time.monotonic() > deadline:
                                raise UrlError(f"fetching the audio URL took longer than {timeout_s:g}s", param="url")
                            out.write(chunk)
                    if size == 0:
                        raise AudioDecodeError("the URL returned an empty body")
                    return target
            raise UrlError(f"fetching the audio URL failed: more than {max_redirects} redirects", param="url")
    except httpx.TimeoutException:
        target.unlink(missing_ok=True)
        raise UrlError(f"the audio URL is unreachable: no answer within {timeout_s:g}s", param="url") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        target.unlink(missing_ok=True)
        raise UrlError(f"the audio URL is unreachable: {type(exc).__name__}: {exc}", param="url") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _too_large(max_bytes: int) -> TooLargeError:
    return TooLargeError(f"the audio URL is larger than the upload limit ({max_bytes / 1048576:g} MB)", param="url")
