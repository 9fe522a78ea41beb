"""User-facing messages: a napari notification (a toast in the window), never a traceback dialog."""

from __future__ import annotations

import logging
import os

from napari.utils.notifications import show_error, show_info, show_warning

from engines.errors import InputError

log = logging.getLogger("tessera")


def failure_message(
    exc: BaseException, path: str | os.PathLike | None = None, *, action: str = "open"
) -> str:
    """One line naming the file and the problem: "Could not ACTION PATH: PROBLEM".

    An `InputError` already says what is wrong with the input; any other exception is a failure we did
    not foresee, so its type is kept to help a bug report.
    """
    if isinstance(exc, InputError):
        where = exc.path or (None if path is None else str(path))
        problem = exc.problem
    else:
        where = None if path is None else str(path)
        problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"Could not {action} {where}: {problem}" if where else problem


def notify_failure(exc: BaseException, path: str | os.PathLike | None = None, *, action: str = "open") -> str:
    """Show `failure_message` as an error notification (and log it with the traceback); return it."""
    message = failure_message(exc, path, action=action)
    log.error(message, exc_info=None if isinstance(exc, InputError) else exc)
    show_error(message)
    return message


def notify_info(message: str) -> None:
    """An informational notification."""
    show_info(message)


def notify_warning(message: str) -> None:
    """A warning notification (something loaded, but the user should know a caveat)."""
    show_warning(message)
