"""``lucidflux doctor``: is this machine ready to restore, before a 35 GB download?

Reports versions, devices and their memory, the weights cache and free disk, the Hugging Face
login state (never the token), and runs the tiny in-memory self-test on every device. Nothing
touches the network unless ``--online`` is given.

Exit codes: 0 ready (warnings allowed), 1 a device's self-test failed, 2 usage error,
3 something blocks a restore (no working device, offline with weights missing, no disk space,
gated weights missing and no token).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from lucidflux_cli import __version__
from lucidflux_cli.errors import one_line

EXIT_OK, EXIT_SELFTEST, EXIT_BLOCKED = 0, 1, 3
PACKAGES = (
    "torch",
    "diffusers",
    "transformers",
    "huggingface_hub",
    "safetensors",
    "spandrel",
    "pillow",
    "pillow-heif",
)


@dataclass
class Report:
    versions: dict[str, str | None] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    restore: dict[str, Any] = field(default_factory=dict)  # the device and dtype restore would use
    cache: dict[str, Any] = field(default_factory=dict)
    hub: dict[str, Any] = field(default_factory=dict)
    selftest: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # each blocks a restore (exit 3)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_BLOCKED
        if any(not result["ok"] for result in self.selftest):
            return EXIT_SELFTEST
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "devices": self.devices,
            "restore": self.restore,
            "cache": self.cache,
            "hub": self.hub,
            "selftest": self.selftest,
            "errors": self.errors,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class Settings:
    """The restore settings doctor needs (from the command line, env and config file)."""

    cache_dir: Path | None = None
    offline: bool = False
    device: str = "auto"
    dtype: str = "auto"
    overrides: dict[str, Path] = field(default_factory=dict)  # weight name -> local path given


def collect(settings: Settings, online: bool = False, selftest: bool = True) -> Report:
    """Gather the whole report; never raises for a machine problem (it is reported instead)."""
    report = Report(versions=versions(), devices=devices())
    report.restore = restore_device(settings)
    report.cache = cache(settings)
    report.hub = hub(online, settings.offline)
    if selftest:
        report.selftest = run_selftests()
    _judge(report, settings)
    return report


# --------------------------------------------------------------------------------- versions


def versions() -> dict[str, str | None]:
    import torch

    found: dict[str, str | None] = {"lucidflux-cli": __version__, "python": sys.version.split()[0]}
    found.update({name: _dist_version(name) for name in PACKAGES})
    found["torch"] = torch.__version__  # with its build tag (+cu130, +cpu)
    found["cuda"] = torch.version.cuda
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    found["cudnn"] = str(cudnn) if cudnn else None
    return found


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------- devices


def devices() -> list[dict[str, Any]]:
    import torch

    found = [_cpu()]
    if torch.cuda.is_available():
        found += [_cuda(index) for index in range(torch.cuda.device_count())]
    return found


def _cpu() -> dict[str, Any]:
    import torch

    total, available = _memory()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "name": "cpu",
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "load_1min": load,
        "memory_total": total,
        "memory_free": available,
    }


def _memory() -> tuple[int | None, int | None]:
    """(total, available) RAM in bytes; /proc/meminfo's MemAvailable counts reclaimable cache."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line
        )
        return _kib(fields.get("MemTotal")), _kib(fields.get("MemAvailable"))
    except OSError:
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), None
    except (AttributeError, ValueError, OSError):
        return None, None


def _kib(text: str | None) -> int | None:
    return int(text.split()[0]) * 1024 if text else None


def _cuda(index: int) -> dict[str, Any]:
    import torch

    name = f"cuda:{index}"
    try:
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        with torch.cuda.device(index):
            bf16 = torch.cuda.is_bf16_supported()
    except Exception as error:  # noqa: BLE001 - a broken device is reported, not raised
        return {"name": name, "error": one_line(error)}
    return {
        "name": name,
        "model": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_total": total,
        "memory_free": free,
        "bf16": bf16,
    }


def restore_device(settings: Settings) -> dict[str, Any]:
    """What ``restore`` would pick with these settings (``auto``: CUDA + bf16 if present)."""
    import torch

    from lucidflux_cli.devices import resolve_device, resolve_dtype

    try:
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
    except (ValueError, RuntimeError) as error:
        return {"device": settings.device, "dtype": settings.dtype, "error": one_line(error)}
    if device.type == "cuda" and device.index is None:
        device = type(device)("cuda", 0)
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        return {
            "device": str(device),
            "dtype": settings.dtype,
            "error": f"this machine has {count} CUDA device(s)",
        }
    return {"device": str(device), "dtype": str(dtype).removeprefix("torch.")}


# ------------------------------------------------------------------------------------ cache


def cache(settings: Settings) -> dict[str, Any]:
    """Each registry entry: given locally, cached, or missing; free disk against what is missing;
    which quality metrics' weights are cached."""
    from lucidflux_cli import weights
    from lucidflux_cli.metrics import cache as metric_cache

    root = weights.cache_root(settings.cache_dir)
    entries = []
    for entry in weights.REGISTRY.values():
        local = settings.overrides.get(entry.name)
        path = local if local is not None else weights.cached_path(entry, root)
        state = "local" if local is not None else "cached" if path is not None else "missing"
        if state == "missing" and entry.optional:
            state = "optional"  # e.g. the text encoders, needed for --prompt only
        entries.append(
            {
                "name": entry.name,
                "source": entry.source,
                "gated": entry.gated,
                "state": state,
                "path": str(path) if path else None,
                "size": entry.size,
            }
        )
    missing = [e for e in entries if e["state"] == "missing"]
    existing = _existing_parent(root)
    return {
        "root": str(root),
        "exists": root.is_dir(),
        "writable": os.access(existing, os.W_OK),
        "offline": weights.is_offline(settings.offline),
        "entries": entries,
        "missing_bytes": sum(e["size"] or 0 for e in missing),
        "missing_unknown_size": [e["name"] for e in missing if e["size"] is None],
        "free_disk": free_disk(existing),
        "metrics": metric_cache.status(cache_dir=root),  # lucidflux eval / restore --score
    }


def free_disk(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


# -------------------------------------------------------------------------------------- hub


def hub(online: bool, offline: bool) -> dict[str, Any]:
    """Login state from the environment and token store; whoami and gated access only ``online``."""
    from lucidflux_cli import weights

    token = _token()
    state: dict[str, Any] = {
        "token": token is not None,
        "token_source": _token_source(token),
        "endpoint": _endpoint(),
        "online_checked": False,
    }
    if not online:
        return state
    if weights.is_offline(offline):
        state["online_error"] = "offline mode is on (--offline / HF_HUB_OFFLINE); skipped the online checks"
        return state
    state["online_checked"] = True
    state.update(_whoami(token))
    gated = sorted({e.repo for e in weights.REGISTRY.values() if e.gated})
    state["gated_access"] = {repo: _access(repo, token) for repo in gated}
    return state


def _token() -> str | None:
    from huggingface_hub import get_token

    try:
        return get_token()
    except Exception:  # noqa: BLE001 - a broken token store reads as "no token"
        return None


def _token_source(token: str | None) -> str | None:
    # Where it came from, never what it is.
    if token is None:
        return None
    if os.environ.get("HF_TOKEN"):
        return "HF_TOKEN environment variable"
    return "stored login (hf auth login)"


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _whoami(token: str | None) -> dict[str, Any]:
    from huggingface_hub import whoami

    if token is None:
        return {"user": None}
    try:
        return {"user": whoami(token=token).get("name")}
    except Exception as error:  # noqa: BLE001 - network and auth failures are answers here
        return {"user": None, "online_error": _redact(_hub_error(error)[1], token)}


def _access(repo: str, token: str | None) -> dict[str, str]:
    """``{"access": ok | denied | unknown, "detail": one line}`` for one gated repository."""
    from huggingface_hub import auth_check

    try:
        auth_check(repo, token=token)
    except Exception as error:  # noqa: BLE001
        access, detail = _hub_error(error)
        return {"access": access, "detail": _redact(detail, token)}
    return {"access": "ok", "detail": "this token can download it"}


def _hub_error(error: BaseException) -> tuple[str, str]:
    """(denied | unknown, why): denied is the hub's answer, unknown a failure to get one."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if isinstance(error, GatedRepoError):
        return "denied", "no access yet: accept the licence on the repository's page with this account"
    if isinstance(error, RepositoryNotFoundError):
        return "denied", "not found, or not visible with this token"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        if error.response.status_code == 401:
            return "denied", "the token was rejected (401): log in again with `hf auth login`"
        return "unknown", f"HTTP {error.response.status_code}"
    return "unknown", f"cannot reach the hub ({one_line(error)})"


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


# -------------------------------------------------------------------------------- self-test


def run_selftests() -> list[dict[str, Any]]:
    from lucidflux_cli.model import selftest

    return [selftest.run(device).to_dict() for device in selftest.devices()]


# ----------------------------------------------------------------------------------- verdict


def _judge(report: Report, settings: Settings) -> None:
    """Turn the facts into errors (block a restore) and warnings (worth knowing)."""
    _judge_devices(report)
    _judge_cache(report)
    _judge_memory(report)


def _judge_devices(report: Report) -> None:
    if "error" in report.restore:
        report.errors.append(f"--device {report.restore['device']}: {report.restore['error']}")
    if report.selftest and not any(result["ok"] for result in report.selftest):
        report.errors.append("the self-test failed on every device: no device can run the pipeline")
    for result in report.selftest:
        if not result["ok"] and result["device"] == report.restore.get("device"):
            others = [r["device"] for r in report.selftest if r["ok"]]
            hint = f"; pass --device {others[0]}" if others else ""
            report.warnings.append(
                f"restore would run on {result['device']}, where the self-test failed{hint}"
            )
    if not any(d["name"].startswith("cuda") for d in report.devices):
        report.warnings.append("no CUDA device: restoring on the CPU works but is very slow")


def _judge_cache(report: Report) -> None:
    from lucidflux_cli.weights import DISK_MARGIN, format_size

    info = report.cache
    missing = [e for e in info["entries"] if e["state"] == "missing"]
    if not missing:
        return
    names = ", ".join(e["name"] for e in missing)
    if info["offline"]:
        report.errors.append(
            f"offline mode is on and weights are not cached: {names} "
            "(run `lucidflux weights download` while online, or pass local paths)"
        )
        return
    report.warnings.append(
        f"not downloaded yet: {names} ({format_size(info['missing_bytes'])}); "
        "`lucidflux weights download` fetches them, or the first restore does"
    )
    needed = info["missing_bytes"] * (1 + DISK_MARGIN)
    if info["free_disk"] is not None and info["free_disk"] < needed:
        report.errors.append(
            f"not enough disk space in {info['root']}: {format_size(info['free_disk'], approx=False)} "
            f"free, the missing weights need {format_size(int(needed))} "
            "(free some, or move the cache with --cache-dir / LUCIDFLUX_CACHE)"
        )
    if not info["writable"]:
        report.errors.append(
            f"cannot write to the cache {info['root']} (move it with --cache-dir / LUCIDFLUX_CACHE)"
        )
    gated = [e for e in missing if e["gated"]]
    if gated and not report.hub.get("token"):
        repos = sorted({e["source"].split(":")[0] for e in gated})
        report.errors.append(
            f"{', '.join(repos)} is gated and no Hugging Face token is set: accept the licence at "
            f"https://huggingface.co/{repos[0]}, then `hf auth login` or set HF_TOKEN"
        )
    for repo, check in report.hub.get("gated_access", {}).items():
        if not any(e["source"].startswith(repo + ":") for e in gated) or check["access"] == "ok":
            continue
        if check["access"] == "denied":
            report.errors.append(f"{repo}: {check['detail']} (https://huggingface.co/{repo})")
        else:
            report.warnings.append(f"could not check access to {repo}: {check['detail']}")


# Memory modes from the fastest to the leanest; float8 needs Ada/Hopper (compute 8.9+).
MEMORY_MODES = (
    ("bf16", "none"),
    ("fp8", "none"),
    ("fp8", "model"),
    ("bf16", "model"),
    ("bf16", "sequential"),
)


def _judge_memory(report: Report) -> None:
    """Warn when the default restore will not fit the device, naming the fastest mode that will.

    Only warnings: the estimates (tiling.estimated_peak_gib, from benchmarks/memory_model.py) are
    for a 1024 px tile, and the out-of-memory retry shrinks tiles; float32 is twice the weights.
    """
    from lucidflux_cli.model import tiling

    device = report.restore.get("device", "")
    info = next((d for d in report.devices if d["name"] == device and d.get("memory_total")), None)
    if info is None or not device.startswith("cuda"):
        return
    gib = info["memory_total"] / 2**30
    report.restore["tile_size_auto"] = tiling.auto_tile_size(gib)
    scale = 2 if report.restore.get("dtype") == "float32" else 1

    def fits(mode: tuple[str, str]) -> bool:
        return scale * tiling.estimated_peak_gib(1024, 1024, *mode) + tiling.HEADROOM_GIB <= gib

    if fits(MEMORY_MODES[0]):
        return
    fp8 = tuple(int(part) for part in info.get("capability", "0.0").split(".")) >= (8, 9)
    usable = [mode for mode in MEMORY_MODES[1:] if (fp8 or mode[0] != "fp8") and fits(mode)]
    need = scale * tiling.estimated_peak_gib(1024, 1024) + tiling.HEADROOM_GIB
    hint = (
        f"use {_flags(usable[0])}"
        if usable
        else "no memory mode fits it: use a larger GPU, or --shard-model over several"
    )
    report.warnings.append(
        f"{device} has {gib:.0f} GiB; a default restore needs about {need:.0f} GiB; {hint}"
    )


def _flags(mode: tuple[str, str]) -> str:
    precision, offload = mode
    return " ".join(
        flag
        for flag in (
            f"--precision {precision}" if precision != "bf16" else "",
            f"--offload {offload}" if offload != "none" else "",
        )
        if flag
    )


# ------------------------------------------------------------------------------------ output


def render(report: Report) -> str:
    from lucidflux_cli.weights import format_size

    lines = ["versions"]
    lines += [f"  {name:<15} {value or 'not installed'}" for name, value in report.versions.items()]
    lines.append("devices")
    lines += [f"  {d['name']:<8} {_describe_device(d, format_size)}" for d in report.devices]
    tiles = report.restore.get("tile_size_auto")
    lines.append(
        f"  restore would use: {report.restore.get('device')} ({report.restore.get('dtype')})"
        + (f", one tile up to {tiles} px (--tile-size auto)" if tiles else "")
    )
    lines += _render_cache(report.cache, format_size)
    lines += _render_hub(report.hub)
    if report.selftest:
        lines.append("self-test (tiny random model, 64x64, 2 steps)")
        for r in report.selftest:
            verdict = "ok" if r["ok"] else f"FAILED: {r['error']}"
            lines.append(f"  {r['device']:<8} {r['dtype']:<9} {r['seconds']:6.2f} s  {verdict}")
    lines += [f"error: {message}" for message in report.errors]
    lines += [f"warning: {message}" for message in report.warnings]
    lines.append(_verdict(report))
    return "\n".join(lines)


def _describe_device(d: dict[str, Any], format_size) -> str:
    if "error" in d:
        return f"unusable: {d['error']}"
    memory = f"{_size(d['memory_total'], format_size)} total, {_size(d['memory_free'], format_size)} free"
    if d["name"] == "cpu":
        load = f", load {d['load_1min']:.1f}" if d.get("load_1min") is not None else ""
        return f"{d['usable_cores']} cores ({d['torch_threads']} torch threads){load}, RAM {memory}"
    return f"{d['model']} (compute {d['capability']}), {memory}, bf16 {'yes' if d['bf16'] else 'no'}"


def _render_cache(info: dict[str, Any], format_size) -> list[str]:
    lines = [f"weights cache: {info['root']}" + ("" if info["exists"] else " (not created yet)")]
    for e in info["entries"]:
        where = e["path"] or e["source"] + (" (gated)" if e["gated"] else "")
        lines.append(f"  {e['name']:<18} {e['state']:<8} {format_size(e['size']):>9}  {where}")
    unknown = len(info["missing_unknown_size"])
    unknown_part = f" + {unknown} of unknown size" if unknown else ""
    missing = f"{format_size(info['missing_bytes'])}{unknown_part} still to download"
    if not any(e["state"] == "missing" for e in info["entries"]):
        missing = "nothing to download"
    lines.append(
        f"  disk: {_size(info['free_disk'], format_size)} free, {missing}"
        + (" (offline mode)" if info["offline"] else "")
    )
    ready = [m["name"] for m in info.get("metrics", []) if not m["missing"]]
    absent = [
        m["name"] + (" (opt-in)" if m["opt_in"] else "") for m in info.get("metrics", []) if m["missing"]
    ]
    lines.append(
        f"  metrics (eval, restore --score): ready: {', '.join(ready) or 'none'}; "
        f"to download: {', '.join(absent) or 'none'} (lucidflux weights download --metrics LIST)"
    )
    return lines


def _render_hub(info: dict[str, Any]) -> list[str]:
    token = f"set ({info['token_source']}; never shown)" if info["token"] else "not set"
    lines = [f"hugging face: {info['endpoint']}", f"  token: {token}"]
    if not info["online_checked"]:
        lines.append("  online checks: " + info.get("online_error", "skipped (run with --online)"))
        return lines
    if info.get("user"):
        lines.append(f"  logged in as: {info['user']}")
    if info.get("online_error"):
        lines.append(f"  whoami: {info['online_error']}")
    lines += [
        f"  {repo}: {check['access']} ({check['detail']})"
        for repo, check in info.get("gated_access", {}).items()
    ]
    return lines


def _verdict(report: Report) -> str:
    if report.exit_code == EXIT_BLOCKED:
        return "NOT READY: fix the errors above before restoring"
    if report.exit_code == EXIT_SELFTEST:
        return "PARTLY READY: the self-test failed on some device"
    return "READY" + (" (see the warnings)" if report.warnings else "")


def _size(value: int | None, format_size) -> str:
    return "?" if value is None else format_size(value, approx=False)
