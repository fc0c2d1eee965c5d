"""The one plugin registry: degradation removers and output formats found through entry points.

Every remover and format, the built-in ones included, is an entry point of an installed
distribution: ``lucidflux.removers`` and ``lucidflux.formats`` (see docs/plugins.md). There is
no second path: what ``importlib.metadata`` does not list does not exist here.

Plugins are imported only when first asked for, once. Listing never raises: a plugin that
fails to import, names the wrong object, or clashes with another keeps its error, which
``lucidflux plugins list`` shows and choosing it turns into a usage error naming the cause.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

from lucidflux_cli.errors import LucidFluxError, one_line

REMOVERS = "lucidflux.removers"
FORMATS = "lucidflux.formats"
GROUPS: dict[str, str] = {REMOVERS: "remover", FORMATS: "format"}


class PluginError(LucidFluxError):
    """A plugin is unknown, cannot be loaded, or refused its options; names the plugin and the cause."""

    def __init__(self, kind: str, name: str, cause: str):
        self.kind, self.name, self.cause = kind, name, cause
        super().__init__(f"{kind} {name!r}: {cause}")


_NOT_LOADED = object()


class Configurable:
    """What every plugin class has: a summary line, the options it accepts, the name it was chosen by."""

    #: One line for ``lucidflux plugins list/info``.
    summary: ClassVar[str] = ""
    #: Accepted option keys -> help text (``--remover-option`` / ``--format-option``). Unknown keys
    #: are refused.
    option_help: ClassVar[Mapping[str, str]] = {}

    name: str = ""  # the entry-point name it was chosen by (set by the tool)
    #: The entry-point group whose contract this class is (set by the contract classes).
    plugin_group: ClassVar[str] = ""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        """Keep and validate ``options``; raise ValueError (one line) for bad ones. Load nothing here."""
        self.options: dict[str, str] = dict(options or {})
        unknown = sorted(set(self.options) - set(self.option_help))
        if unknown:
            known = ", ".join(sorted(self.option_help)) or "none"
            raise ValueError(f"unknown option(s) {', '.join(unknown)} (accepted: {known})")

    @classmethod
    def contract_problem(cls) -> str | None:
        """Why this class breaks its contract beyond the abstract methods (None if it does not)."""
        return None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this plugin cannot work on this machine (a missing library, ...); None if it can."""
        return None


@dataclass
class Plugin:
    """One entry point: where it comes from, and (once loaded) its class or its error."""

    name: str
    group: str
    target: str  # "module:attribute", as the entry point says
    distribution: str | None
    version: str | None
    entry_point: metadata.EntryPoint | None = field(default=None, repr=False, compare=False)
    conflict: str | None = None  # set when another distribution registers the same name
    _value: Any = field(default=_NOT_LOADED, repr=False, compare=False)
    _error: str | None = field(default=None, repr=False, compare=False)
    _traceback: str | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return GROUPS.get(self.group, self.group)

    @property
    def source(self) -> str:
        """'lucidflux-cli 0.1.0', or the entry point's module when no distribution is known."""
        if self.distribution is None:
            return self.target.split(":")[0]
        return f"{self.distribution} {self.version}" if self.version else self.distribution

    @property
    def error(self) -> str | None:
        """Why the plugin cannot be used (imports it if needed); None when it loaded."""
        self._try_load()
        return self._error

    @property
    def traceback(self) -> str | None:
        self._try_load()
        return self._traceback

    def load(self) -> type:
        """The plugin's class; raises PluginError with the cause when it cannot be used."""
        self._try_load()
        if self._error is not None:
            raise PluginError(self.kind, self.name, self._error)
        return self._value

    def _try_load(self) -> None:
        if self._value is not _NOT_LOADED or self._error is not None:
            return
        if self.conflict:
            self._error = self.conflict
            return
        try:
            value = self.entry_point.load() if self.entry_point is not None else None
        except (Exception, SystemExit) as error:  # a plugin must never take the tool down
            self._error = f"cannot import {self.target} ({one_line(error)})"
            self._traceback = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            return
        self._error = _contract_problem(value, self.group, self.target)
        if self._error is None:
            self._value = value


def _contract_problem(value: object, group: str, target: str) -> str | None:
    """Why ``value`` is not a usable plugin class for ``group`` (None if it is).

    Each contract class (the remover's, the format's) names its group in ``plugin_group``, so the
    registry checks contracts without importing the layers that define them.
    """
    if not (inspect.isclass(value) and issubclass(value, Configurable) and value.plugin_group == group):
        what = type(value).__name__ if not inspect.isclass(value) else f"class {value.__qualname__}"
        return f"{target} is a {what}, not a subclass of the {GROUPS[group]} contract class (docs/plugins.md)"
    if inspect.isabstract(value):
        missing = ", ".join(sorted(value.__abstractmethods__))
        return f"{target} does not implement {missing}"
    problem = value.contract_problem()
    if problem:
        return f"{target}: {problem}"
    try:
        reason = value.unavailable()
    except Exception as error:  # the availability probe is plugin code too
        return f"{target}.unavailable() failed ({one_line(error)})"
    return f"unavailable: {reason}" if reason else None


class Registry:
    """The plugins of one entry-point group, discovered once; classes and configured objects cached."""

    def __init__(self, group: str):
        self.group = group
        self.kind = GROUPS[group]
        self._plugins: list[Plugin] | None = None
        self.instances: dict[Any, Any] = {}  # configured objects, keyed by the caller (e.g. name + options)

    def all(self) -> list[Plugin]:
        """Every entry point of the group, duplicates included, in discovery order."""
        if self._plugins is None:
            self._plugins = _discover(self.group)
        return self._plugins

    def names(self) -> list[str]:
        return sorted({plugin.name for plugin in self.all()})

    def usable(self) -> Iterator[Plugin]:
        """Plugins that load (imports each one the first time)."""
        seen = set()
        for plugin in self.all():
            if plugin.name not in seen and plugin.error is None:
                seen.add(plugin.name)
                yield plugin

    def get(self, name: str) -> Plugin:
        """The plugin called ``name`` (case-insensitive); PluginError if none is installed."""
        key = name.strip().lower()
        for plugin in self.all():
            if plugin.name == key:
                return plugin
        known = ", ".join(self.names()) or "none installed"
        raise PluginError(
            self.kind,
            name,
            f"no such {self.kind} is installed (installed: {known}; see `lucidflux plugins list`)",
        )

    def load(self, name: str) -> type:
        return self.get(name).load()


def _discover(group: str) -> list[Plugin]:
    plugins: list[Plugin] = []
    by_name: dict[str, Plugin] = {}
    for entry_point in metadata.entry_points(group=group):
        plugin = _plugin(entry_point, group)
        first = by_name.setdefault(plugin.name, plugin)
        if first is not plugin:  # never let one package silently shadow another (or a built-in)
            clash = f"{plugin.name!r} is registered by both {first.source} and {plugin.source}; uninstall one"
            first.conflict = plugin.conflict = clash
        plugins.append(plugin)
    return plugins


def _plugin(entry_point: metadata.EntryPoint, group: str) -> Plugin:
    dist = getattr(entry_point, "dist", None)
    name = version = None
    if dist is not None:
        try:
            name, version = dist.metadata["Name"], dist.version
        except Exception:  # broken METADATA: still list the plugin
            name = None
    return Plugin(
        name=entry_point.name.strip().lower(),
        group=group,
        target=entry_point.value,
        distribution=name,
        version=version,
        entry_point=entry_point,
    )


@functools.cache
def registry(group: str) -> Registry:
    """The registry of ``group`` (``REMOVERS`` or ``FORMATS``), created on first use."""
    if group not in GROUPS:
        raise KeyError(f"unknown plugin group {group!r}")
    return Registry(group)


def clear_cache() -> None:
    """Forget discovered plugins and configured objects (after installing one in-process, in tests)."""
    registry.cache_clear()
    importlib.invalidate_caches()  # importlib.metadata remembers folder listings


def all_plugins() -> list[Plugin]:
    """Removers then formats, each sorted by name."""
    return [plugin for group in GROUPS for plugin in sorted(registry(group).all(), key=lambda p: p.name)]


def find(name: str) -> list[Plugin]:
    """Every plugin called ``name`` in any group."""
    key = name.strip().lower()
    return [plugin for plugin in all_plugins() if plugin.name == key]
