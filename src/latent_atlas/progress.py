"""Progress bars that appear on a terminal and stay out of logs and pipes.

``progress_bar(..., enabled=True)`` shows a tqdm bar when stderr is a terminal; elsewhere
(CI logs, pipes, notebooks without a terminal) the bar is silent and long steps report
through the ``latent_atlas`` logger instead. ``enabled=False`` silences both.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():  # in a notebook without ipywidgets: the terminal bar, no warning
    warnings.filterwarnings("ignore", message="IProgress not found")
    from tqdm.auto import tqdm


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar, shown only when ``enabled`` and stderr is a terminal."""
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
