"""Progress bars on stderr and the plots of a run."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as _RichProgress


class Progress:
    """rich progress bars on stderr, or nothing when disabled."""

    def __init__(self, enabled: bool) -> None:
        self._progress: _RichProgress | None = None
        if enabled:
            self._progress = _RichProgress(TextColumn("{task.description}"), BarColumn(),
                                           TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                           console=Console(stderr=True), transient=False)

    def __enter__(self) -> Progress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def task(self, description: str, total: int) -> Callable[..., None]:
        """A new bar; the returned function advances it (and may change its description)."""
        progress = self._progress
        if progress is None:
            return lambda advance=1, description=None: None
        tid = progress.add_task(description, total=total)

        def update(advance: int = 1, description: str | None = None) -> None:
            if description is not None:
                progress.update(tid, advance=advance, description=description)
            else:
                progress.update(tid, advance=advance)

        return update
