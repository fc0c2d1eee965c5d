"""Finding formats by name: the registry of ``lucidflux.formats`` entry points, aliases, options.

Every name a format answers to comes from its own class (the entry-point name, ``aliases``), so
the built-ins need no table here and a plugin's names work exactly like theirs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path

from lucidflux_cli import plugins
from lucidflux_cli.imageio.formats.base import OutputFormat

# --format-option values of the current run, by format name (set around a batch by ``using_options``).
_RUN_OPTIONS: ContextVar[Mapping[str, Mapping[str, str]] | None] = ContextVar(
    "lucidflux_format_options", default=None
)
_ALIASES_KEY = ("aliases",)  # where the alias table is cached among the registry's instances


def _registry() -> plugins.Registry:
    return plugins.registry(plugins.FORMATS)


def _aliases() -> dict[str, str]:
    """alias -> format name, over the formats that load (cached with the registry)."""
    registry = _registry()
    if _ALIASES_KEY not in registry.instances:
        table: dict[str, str] = {}
        for plugin in registry.usable():  # imports each plugin once
            for alias in plugin.load().aliases:
                table.setdefault(alias, plugin.name)
        registry.instances[_ALIASES_KEY] = table
    return registry.instances[_ALIASES_KEY]


def canonical(name: str) -> str:
    """'JPG' -> 'jpeg', '.tif' -> 'tiff', 'mpo' -> 'jpeg'; unknown names lower-cased."""
    key = name.strip().lower().lstrip(".")
    if key in _registry().names():
        return key
    return _aliases().get(key, key)


def format_from_extension(name: str) -> str:
    """Format guessed from a suffix or file name ('.JPG' -> 'jpeg'); unknown suffixes pass through."""
    return canonical(Path(name).suffix or name)


def create(name: str, options: Mapping[str, str] | None = None) -> OutputFormat:
    """The configured format ``name`` (cached); PluginError (a usage error) naming it and the cause."""
    key = canonical(name)
    options = dict(options or {})
    registry = _registry()
    cache_key = (key, tuple(sorted(options.items())))
    if cache_key not in registry.instances:
        cls = registry.load(key)
        try:
            writer = cls(options)
        except Exception as error:
            cause = (
                str(error)
                if isinstance(error, ValueError)
                else f"cannot be configured ({type(error).__name__}: {error})"
            )
            raise plugins.PluginError("format", key, cause) from error
        writer.name = key
        registry.instances[cache_key] = writer
    return registry.instances[cache_key]


def get(name: str, options: Mapping[str, str] | None = None) -> OutputFormat:
    """Like :func:`create`; ``options`` None means the run's ``--format-option`` values for ``name``."""
    if options is None:
        options = (_RUN_OPTIONS.get() or {}).get(canonical(name), {})
    return create(name, options)


def select(requested: str, options: Mapping[str, str] | None = None) -> None:
    """Check ``--format`` / ``--format-option`` before any work; PluginError or ValueError if unusable."""
    if canonical(requested) == "same":
        if options:
            raise ValueError("--format-option needs an explicit --format NAME (not 'same')")
        return
    create(requested, options)


@contextlib.contextmanager
def using_options(requested: str, options: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, :func:`get` configures format ``requested`` with ``options``."""
    token = _RUN_OPTIONS.set({canonical(requested): dict(options)} if options else {})
    try:
        yield
    finally:
        _RUN_OPTIONS.reset(token)


def names() -> list[str]:
    """Formats that can be written here (imports each plugin the first time)."""
    return sorted(plugin.name for plugin in _registry().usable())


def extension(name: str) -> str:
    """The file extension of format ``name`` ('.jpg'); KeyError if no usable format has that name."""
    key = canonical(name)
    try:
        cls = _registry().load(key)
    except plugins.PluginError:
        raise KeyError(key) from None
    return cls.capabilities.extensions[0]


class _Extensions(Mapping[str, str]):
    """Writable formats -> output file extension, read live from the registry."""

    def __getitem__(self, fmt: str) -> str:
        return extension(fmt)

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(names())


# GIF is deliberately not a format: a 256-colour palette would undo the restoration.
EXTENSIONS: Mapping[str, str] = _Extensions()


def output_format_for(input_format: str, requested: str) -> str:
    """Resolve ``--format``: 'same' keeps the input format when we can write it, else 'png'.

    Raises ValueError (one line) for a format we cannot write.
    """
    wanted = canonical(requested)
    if wanted == "same":
        source = canonical(input_format)
        return source if source in EXTENSIONS else "png"
    if wanted not in EXTENSIONS:
        choices = ", ".join(["same", *sorted(EXTENSIONS)])
        raise ValueError(f"unsupported output format {requested!r} (choose from {choices})")
    return wanted


def readable_extensions() -> frozenset[str]:
    """What folder walks and globs pick up: the extensions of every usable format (and its
    ``read_extensions``) that Pillow can open. A plugin such as the JPEG XL one registers a Pillow
    decoder on import, so its files count too. GIF is left out: mostly animations, not photos."""
    from PIL import Image

    found = set()
    for plugin in _registry().usable():  # imports each plugin once
        cls = plugin.load()
        Image.init()
        openers = Image.registered_extensions()
        candidates = (*cls.capabilities.extensions, *cls.read_extensions)
        found.update(ext.lower() for ext in candidates if openers.get(ext.lower()) in Image.OPEN)
    return frozenset(found)
