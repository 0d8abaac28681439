"""Values the library passes around that need neither torch nor scikit-learn
(so reading and writing results stays light)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np
from attrs import field, frozen

from audio_embed.errors import InvalidInputError

if TYPE_CHECKING:
    from audio_embed.classifier import BaseKind

__all__ = ["Detection", "ScanDefaults", "is_real_number", "time_repr"]

_KINDS = ("hgb", "logreg", "extratrees", "prototype")


def is_real_number(value: Any) -> bool:
    """A real number (Python's or numpy's, a 0-d array too), not a bool or a string."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.ndim(value) != 0:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def time_repr(seconds: float) -> str:
    """A time in a repr: to the microsecond, without the float noise of a sum
    of hops (``11.650000000000002``)."""
    return repr(round(seconds, 6))


@frozen
class Detection:
    """A time region where the target sound scored at or above the threshold.

    ``start``/``end`` in seconds from the start of the file, ``score`` the
    highest window probability inside, ``peak`` the centre of that window
    (NaN when unknown: read back from Audacity or Raven). Plain floats (numpy
    scalars are converted: ``start=55.15``, not ``start=np.float64(55.15)``);
    the repr shows the times to the microsecond (``start=11.65``, not
    ``start=11.650000000000002``), the values themselves are not rounded.
    """

    start: float = field(converter=float, repr=time_repr)
    end: float = field(converter=float, repr=time_repr)
    score: float = field(converter=float)
    peak: float = field(converter=float, repr=time_repr)


def _positive_or_none(name: str) -> Any:
    def check(_instance: object, _attribute: object, value: float | None) -> None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InvalidInputError(
                f"The {name!r} of ScanDefaults must be > 0 seconds or None. Got {value!r} instead."
            )

    return check


def _kind_or_none(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None and value not in _KINDS:
        raise InvalidInputError(
            f"The 'classifier' of ScanDefaults must be one of {', '.join(_KINDS)} or None. "
            f"Got {value!r} instead."
        )


@frozen(kw_only=True)
class ScanDefaults:
    """The scan settings measured best for one model (``Embedder.scan_defaults()``).

    A :class:`~audio_embed.Scanner` built without ``scan_windows``,
    ``classifier``, ``context`` or ``postprocessing`` takes each of these that
    is not None; what the caller passes always wins, and None leaves the
    library's generic default.

    Attributes:
        window, hop: sliding window length and step, seconds.
        classifier: the base estimator (:func:`~audio_embed.classifier.make_base_estimator`
            kind) instead of the automatic choice.
        context: the Scanner's context seconds (0 = none).
        extent: :class:`~audio_embed.detect.Postprocessing` ``extent``.
        all_negatives: True: the classifier keeps every negative window
            (:class:`~audio_embed.CalibratedClassifier` ``max_neg_ratio=None``)
            instead of a seeded subsample, so that its fit does not depend on
            the seed.
    """

    window: float | None = field(default=None, validator=_positive_or_none("window"))
    hop: float | None = field(default=None, validator=_positive_or_none("hop"))
    classifier: BaseKind | None = field(default=None, validator=_kind_or_none)
    context: float | None = None
    extent: Literal["track", "intersection"] | None = None
    all_negatives: bool | None = None

    def __attrs_post_init__(self) -> None:
        if self.context is not None and not (math.isfinite(self.context) and self.context >= 0):
            raise InvalidInputError(
                f"The 'context' of ScanDefaults must be >= 0 seconds or None. Got {self.context!r}."
            )
        if self.extent not in (None, "track", "intersection"):
            raise InvalidInputError(
                "The 'extent' of ScanDefaults must be 'track', 'intersection' or None. "
                f"Got {self.extent!r} instead."
            )

    def as_dict(self) -> dict[str, Any]:
        """The settings that are set (not None)."""
        return attrs.asdict(self, filter=lambda _attribute, value: value is not None)
