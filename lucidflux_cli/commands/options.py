"""Click options generated from a settings dataclass (:mod:`lucidflux_cli.runner.settings`).

Every command on the shared runner declares its options once, as fields with an ``OptionSpec``;
this module turns them into Click parameters (type, default, help, parsing) and names their
``LUCIDFLUX_*`` variables after the long option names.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lucidflux_cli.runner import settings
from lucidflux_cli.runner.settings import OptionSpec


def click_parameter(item: dataclasses.Field, spec: OptionSpec) -> Callable:
    """The Click decorator for one setting: type, default, help and parsing all from its spec."""
    if spec.argument:
        return click.argument(item.name, nargs=-1, required=spec.required)
    default = settings.default_of(item)
    kwargs: dict[str, Any] = {"help": spec.help, "metavar": spec.metavar, "required": spec.required}
    if spec.envvar:
        kwargs["envvar"] = spec.envvar
    if spec.flag:
        kwargs.update(is_flag=True, default=default)
    elif spec.bare is not None:  # a value that may be left out
        kwargs.update(is_flag=False, flag_value=spec.bare, default=default, type=_click_type(item, spec))
    else:
        kwargs.update(
            type=_click_type(item, spec),
            multiple=spec.multiple,
            default=() if spec.multiple else default,
            show_default=default not in (None, "", ()) and not spec.multiple,
        )
    if spec.parse is not None:
        kwargs["callback"] = _parsing(spec.parse, spec.multiple)
    return click.option(*spec.long_names(item.name), item.name, **kwargs)


def _click_type(item: dataclasses.Field, spec: OptionSpec) -> Any:
    if spec.choices:
        return click.Choice(list(spec.choices))
    if spec.path:
        return click.Path(file_okay=spec.path != "dir", dir_okay=spec.path != "file", path_type=Path)
    if spec.minimum is not None or spec.maximum is not None:
        return click.IntRange(spec.minimum, spec.maximum)
    annotation = str(item.type)
    if spec.parse is None and annotation.startswith("float"):
        return float
    if spec.parse is None and annotation.startswith("int"):
        return int
    return str


def _parsing(parse: Callable[[Any], Any], multiple: bool) -> Callable:
    """A Click callback: the spec's parser on the text, its ValueError as a usage error naming the option."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or (not multiple and value == ""):
            return None
        try:
            return parse(value)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx=ctx, param=param) from error

    return callback


def settings_options(cls: type) -> Callable[[Callable], Callable]:
    """A decorator adding every option of the settings dataclass ``cls`` (in ``--help`` order)."""

    def decorate(function: Callable) -> Callable:
        for item, spec in reversed(list(settings.options(cls))):
            function = click_parameter(item, spec)(function)
        return function

    return decorate


def envvars_from_long_names(command: click.Command, prefix: str = "LUCIDFLUX_") -> None:
    """``<prefix><LONG NAME>`` for every option: ``--format`` -> LUCIDFLUX_FORMAT, ``-o/--output`` ->
    LUCIDFLUX_OUTPUT (the same names the config file uses), not the internal parameter names.
    Other commands take their own prefix (LUCIDFLUX_FILTER_OUTPUT), so restore's variables never
    leak into them; options with an explicit variable (LUCIDFLUX_CACHE) keep it."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar is None:
            long_names = [opt for opt in param.opts if opt.startswith("--")]
            if long_names:
                param.envvar = prefix + long_names[0][2:].replace("-", "_").upper()


def run_job_command(job_type: Callable[[Any], Any], request_type: type, values: dict[str, Any]) -> None:
    """A command on the shared runner: settings from the parsed values, the job (a ValueError is a
    usage error, exit 2; a setup error exits 3), then the run; exits with the run's code."""
    from lucidflux_cli.commands.logs import setup_logging
    from lucidflux_cli.errors import EXIT_SETUP, LucidFluxError
    from lucidflux_cli.runner.run import run_job

    setup_logging(values["quiet"], values["verbose"], values["log_file"])
    values = {
        **values,
        "inputs": list(values["inputs"]),
        "include": tuple(values["include"]),
        "exclude": tuple(values["exclude"]),
    }
    try:
        job = job_type(request_type(**values))
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    except LucidFluxError as error:
        logging.getLogger("lucidflux").error("%s", error)
        sys.exit(EXIT_SETUP)
    sys.exit(run_job(job))
