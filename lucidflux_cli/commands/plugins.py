"""``lucidflux plugins list|info``: installed degradation removers and output formats.

Listing imports every plugin (that is how a broken one is found) but never fails because of
one: a plugin that does not load is shown with its error. Exit codes: 0 ok, 1 ``info`` on a
plugin that does not load, 2 usage (no such plugin).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from lucidflux_cli import plugins


@click.group("plugins", context_settings={"help_option_names": ["-h", "--help"]})
def plugins_group() -> None:
    """List and inspect remover and format plugins (lucidflux.removers / lucidflux.formats)."""


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def list_command(as_json: bool) -> None:
    """Every remover and format: name, group, distribution and version, loaded or the error."""
    rows = [describe(plugin) for plugin in plugins.all_plugins()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("NAME", "GROUP", "DISTRIBUTION", "STATUS")]
    for row in rows:
        status = "loaded" if row["error"] is None else f"failed: {row['error']}"
        table.append((row["name"], row["group"], _source(row), status))
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    for line in table:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(line[:3], widths, strict=True)) + "  " + line[3]
        )


@plugins_group.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def info_command(name: str, as_json: bool) -> None:
    """Details of plugin NAME: where it comes from, its options and capabilities, or its error."""
    found = plugins.find(name)
    if not found:
        known = ", ".join(sorted({p.name for p in plugins.all_plugins()}))
        raise click.BadParameter(
            f"no plugin called {name!r} is installed (installed: {known})", param_hint="NAME"
        )
    details = [describe(plugin, detailed=True) for plugin in found]
    if as_json:
        click.echo(json.dumps(details, indent=2))
    else:
        click.echo("\n\n".join(_text(d) for d in details))
    if any(d["error"] for d in details):
        sys.exit(1)


def describe(plugin: plugins.Plugin, detailed: bool = False) -> dict[str, Any]:
    """A plugin as plain data (the JSON of ``list`` and ``info``)."""
    error = plugin.error
    row: dict[str, Any] = {
        "name": plugin.name,
        "group": plugin.kind,
        "entry_point_group": plugin.group,
        "entry_point": plugin.target,
        "distribution": plugin.distribution,
        "version": plugin.version,
        "status": "loaded" if error is None else "failed",
        "error": error,
    }
    if error is None:
        cls = plugin.load()
        row["summary"] = cls.summary or (cls.__doc__ or "").strip().split("\n")[0]
        if detailed:
            row["options"] = dict(cls.option_help)
            row.update(_remover_details(plugin) if plugin.group == plugins.REMOVERS else _format_details(cls))
    elif detailed:
        row["traceback"] = plugin.traceback
    return row


def _remover_details(plugin: plugins.Plugin) -> dict[str, Any]:
    from lucidflux_cli.model import removers

    try:  # what it fetches may depend on its options (e.g. a model path): say so when it does
        names, own = removers.weight_needs(removers.create(plugin.name))
    except plugins.PluginError as error:
        return {"weights": None, "weights_note": f"depends on its options ({error.cause})"}
    from lucidflux_cli.weights import REGISTRY

    return {
        "weights": [f"{n} ({REGISTRY[n].source})" for n in names] + [f"{w.name} ({w.source})" for w in own]
    }


def _format_details(cls: type) -> dict[str, Any]:
    caps = cls.capabilities
    return {
        "capabilities": {
            "extensions": list(caps.extensions),
            "bit_depths": list(caps.bit_depths),
            "alpha": caps.alpha,
            "exif": caps.exif,
            "icc": caps.icc,
            "xmp": caps.xmp,
            "quality": caps.quality,
        }
    }


def _source(row: dict[str, Any]) -> str:
    if row["distribution"] is None:
        return "-"
    return f"{row['distribution']} {row['version']}" if row["version"] else row["distribution"]


def _text(row: dict[str, Any]) -> str:
    lines = [
        f"name:         {row['name']}",
        f"group:        {row['group']} ({row['entry_point_group']})",
        f"entry point:  {row['entry_point']}",
        f"distribution: {_source(row)}",
        f"status:       {row['status']}",
    ]
    if row["error"] is not None:
        lines.append(f"error:        {row['error']}")
        if row.get("traceback"):
            lines += ["", row["traceback"].rstrip()]
        return "\n".join(lines)
    lines.append(f"summary:      {row['summary']}")
    options = row.get("options") or {}
    lines.append("options:" + ("" if options else "      none"))
    lines += [f"  {key}: {help_text}" for key, help_text in options.items()]
    if "capabilities" in row:
        caps = row["capabilities"]
        flags = ", ".join(k for k in ("alpha", "exif", "icc", "xmp", "quality") if caps[k]) or "-"
        lines.append(f"extensions:   {' '.join(caps['extensions'])}")
        lines.append(f"bit depths:   {', '.join(map(str, caps['bit_depths']))}")
        lines.append(f"keeps:        {flags}")
    if "weights" in row:
        weights = row["weights"]
        text = row.get("weights_note") if weights is None else (", ".join(weights) or "none")
        lines.append(f"weights:      {text}")
    return "\n".join(lines)
