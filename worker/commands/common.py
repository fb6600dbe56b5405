"""What every `recstream` command shares: settings or exit 2, logging, comma lists.

Imports click alone at the top: each command module is loaded for `recstream --help`,
so pydantic, structlog and the tools are imported only once a command runs.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from collections.abc import Iterator

    from structlog.stdlib import BoundLogger

    from worker.config.settings import Settings

T = TypeVar("T")


def log() -> BoundLogger:
    """The commands' logger; structlog (and the asyncio it loads) only once a command runs."""
    import structlog

    logger: BoundLogger = structlog.get_logger("recstream.cli")
    return logger


@contextlib.contextmanager
def exit_2_on_error(event: str, **fields: object) -> Iterator[None]:
    """A tool's expected failure (a bad file, a broker away): one log line, exit 2, no trace."""
    from recstream.errors import RecstreamError

    try:
        yield
    except RecstreamError as exc:
        log().error(event, error=str(exc), **fields)
        sys.exit(2)


def configure_logging(fmt: str, level: str) -> None:
    """`worker.observability.logs.configure_logging`, imported when needed, not for --help."""
    from worker.observability.logs import configure_logging as configure

    configure(fmt, level)


def tool_logging(level: str) -> None:
    """A tool's logs: for a person on a terminal, else JSON lines (CI, a log file)."""
    configure_logging("console" if sys.stderr.isatty() else "json", level)


def settings_or_exit() -> Settings:
    """The settings from the environment, or the bad variables on stderr and exit 2."""
    from worker.config.settings import load_settings
    from worker.errors import SettingsError

    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


class CommaList(click.ParamType[tuple[T, ...], Any]):
    """A comma-separated list, each part stripped and converted by a click type.

    `--methods a,b` with `CommaList(click.Choice(NAMES))` is `("a", "b")`, and a
    part the item type refuses is a usage error naming it (exit 2). Empty parts
    are dropped; an empty list is refused unless `empty` allows it.
    """

    name = "text"  # the metavar `--help` shows (TEXT), as for a plain string

    def __init__(self, item: click.ParamType[T, Any], *, empty: bool = False) -> None:
        """Parts converted by `item`; `empty`: whether no part at all is allowed."""
        self.item = item
        self.empty = empty

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[T, ...]:
        """The parts of `value`, converted (an already converted tuple passes as it is)."""
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",") if part.strip()]
        if not parts and not self.empty:
            self.fail(f"expected a comma-separated list, got {value!r}", param, ctx)
        return tuple(self.item.convert(part, param, ctx) for part in parts)
