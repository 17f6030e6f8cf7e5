"""Whether a download from the Hugging Face hub (or another host) can start, asked before
the download: offline, the libraries retry for minutes and print a warning per retry, so
a run that needs the network and has none fails at once in one line instead."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

PROBE_SECONDS = 2.0  # DNS and TCP connect to the host, together


def hub_endpoint() -> str:
    """The hub's address as ``huggingface_hub`` uses it (``HF_ENDPOINT``)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` is set: the hub libraries read their caches only."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def unreachable(url: str, seconds: float = PROBE_SECONDS) -> str | None:
    """``None`` when a TCP connection to ``url``'s host opens within ``seconds`` (name
    lookup included: it runs in a thread, since ``getaddrinfo`` takes no timeout), else
    why not, in a few words."""
    parts = urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (80 if parts.scheme == "http" else 443)
    outcome: dict[str, BaseException] = {}

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=seconds).close()
        except OSError as err:
            outcome["error"] = err

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(seconds)
    if probe.is_alive():
        return f"no answer from {host} within {seconds:.0f} s"
    if "error" in outcome:
        err = outcome["error"]
        return f"cannot reach {host} ({err.strerror or type(err).__name__})"
    return None


def hub_unavailable(url: str | None = None) -> str | None:
    """Why a download from ``url`` (default: the hub) cannot start now, or ``None``:
    ``HF_HUB_OFFLINE`` is set (hub downloads only), or the host does not answer."""
    if url is None:
        if offline_mode():
            return "HF_HUB_OFFLINE is set"
        url = hub_endpoint()
    return unreachable(url)


def cached_on_hub(repo_id: str, filenames: tuple[str, ...]) -> bool:
    """Whether one of ``filenames`` of hub repository ``repo_id`` is in the local cache
    (a download then needs no network)."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)
