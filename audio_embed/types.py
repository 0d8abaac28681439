"""Values the library passes around that need neither torch nor scikit-learn
(so reading and writing results stays light)."""

from __future__ import annotations

from attrs import frozen

__all__ = ["Detection"]


@frozen
class Detection:
    """A time region where the target sound scored at or above the threshold.

    ``start``/``end`` in seconds from the start of the file, ``score`` the
    highest window probability inside, ``peak`` the centre of that window.
    """

    start: float
    end: float
    score: float
    peak: float
