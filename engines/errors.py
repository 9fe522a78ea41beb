"""Errors that mean "the user's input is wrong", as opposed to a bug or a failed computation."""

from __future__ import annotations

from os import PathLike


class InputError(ValueError):
    """Bad user input: names the file (when there is one) and what is wrong with it.

    The CLI turns it into a message on stderr and exit code 2; the GUI into a napari notification.
    """

    def __init__(self, problem: str, path: str | PathLike | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
