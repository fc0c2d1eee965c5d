"""One-line messages for what cannot be had: offline, gated, not found, unreachable. Never the token."""

from __future__ import annotations

from lucidflux_cli.weights.registry import WeightFile


class NotAHub(OSError):
    """The endpoint answered, but not like a Hugging Face hub."""


def offline_hint(entry: WeightFile) -> str:
    hint = f"{entry.name}: {entry.source} is not cached; run `lucidflux weights download {entry.name}` online"
    if entry.gated:
        hint += f" (gated: accept the licence at https://huggingface.co/{entry.repo} first)"
    return hint + f", or pass {entry.flag} PATH"


def gated_hint(entry: WeightFile) -> str:
    from huggingface_hub import get_token

    url = f"https://huggingface.co/{entry.repo}"
    if _safe(get_token) is None:
        how = f"log in at {url} and accept its licence, then run `hf auth login` or set HF_TOKEN"
    else:
        how = f"the token in use has no access yet: accept the licence at {url} with the same account"
    return f"{entry.name}: {entry.repo} is gated; {how} (or pass {entry.flag} PATH)"


def describe(entry: WeightFile, filename: str, error: BaseException, resumable: bool = False) -> str:
    """One line naming repo/file and the cause; never the token."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{entry.name}: {entry.repo}:{filename}@{entry.revision}"
    if isinstance(error, GatedRepoError):
        return gated_hint(entry)
    if isinstance(error, RevisionNotFoundError):
        cause = f"revision {entry.revision!r} not found"
    elif isinstance(error, RemoteEntryNotFoundError):
        cause = "file not found in the repository"
    elif isinstance(error, RepositoryNotFoundError):
        cause = "repository not found (or private: `hf auth login` / HF_TOKEN)"
    elif isinstance(error, OfflineModeIsEnabled):
        return offline_hint(entry)
    elif isinstance(error, HfHubHTTPError) and error.response is not None:
        cause = f"HTTP {error.response.status_code} from {error.response.url.host}"
    elif isinstance(error, NotAHub) or is_network_error(error):
        cause = f"cannot reach the hub ({_first_line(error) or type(error).__name__}); check the network"
    else:
        cause = _first_line(error) or type(error).__name__
    resume = "; the partial download is kept, run again to resume" if resumable else ""
    return _redact(f"{where}: {cause}{resume}; or pass {entry.flag} PATH")


def expected(error: BaseException) -> bool:
    """Failures of the hub, network or disk (one line for the user), not bugs (a traceback)."""
    return isinstance(error, (OSError, ValueError)) or is_network_error(error)


def is_network_error(error: BaseException) -> bool:
    # By name: the HTTP client behind huggingface_hub changed across its major versions.
    return any(c.__name__ in ("TransportError", "ConnectionError", "Timeout") for c in type(error).__mro__)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _redact(text: str) -> str:
    """Belt and braces: no message built from a foreign exception may carry the token."""
    from huggingface_hub import get_token

    token = _safe(get_token)
    return text.replace(token, "***") if token else text


def _safe(function):
    try:
        return function()
    except Exception:  # noqa: BLE001 - a broken token store must not hide the real error
        return None
