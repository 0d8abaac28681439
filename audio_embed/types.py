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

__all__ = [
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "Detection",
    "ScanDefaults",
    "check_sample_rate",
    "is_real_number",
    "time_repr",
]

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


#: The lowest sample rate a file is decoded at, or an array taken at (Hz): below it a
#: recording holds nothing above 50 Hz, where the lowest band of any model here starts
#: (LOGMEL's ``f_min``), so its rate is wrong (a damaged or hand-written WAV header, an
#: array's rate in kHz). Such a file is a :class:`~audio_embed.errors.CorruptAudioError`
#: naming its rate (before: at 1 Hz, ``the audio stream holds no samples`` below a few
#: dozen samples, and above them every sample upsampled 16000-fold, scanned silently).
#: Real low-rate recordings (heart sounds, whale calls at a few hundred hertz) are read.
MIN_SAMPLE_RATE = 100
#: The highest sample rate an array is taken at (Hz): 4 MHz, above every audio and
#: ultrasound recorder's rate (sound cards top out at 768 kHz, ultrasound recorders for
#: bats and rodents run at a few hundred kHz to about 1 MHz; review: 768 kHz refused an
#: array that the same recording as a file was scanned from). Above it the rate is a
#: slip (a rate in mHz, the number of samples given as the rate), which would resample
#: the array to almost nothing.
MAX_SAMPLE_RATE = 4_000_000


def check_sample_rate(value: object, owner: str, name: str = "sample_rate") -> int:
    """A sample rate given with an array (or asked of a decoder), as an int; where
    arrays enter the library (``Scanner.scan``, ``Recording``, ``Embedder.embed``,
    ``resample``, ``load_audio``, …): ``owner`` and ``name`` name it in the error.

    Raises:
        InvalidInputError: not a whole number of hertz (NaN, 16000.5, "16000"), or
            outside [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] (0, -16000,
            16 for 16 kHz, 10**9). (Before: 0 and negative rates were refused by
            resampling, NaN was ``ValueError: cannot convert float NaN to integer``, 10
            Hz was upsampled 1600-fold and 10**9 Hz resampled to one sample, silently.)
    """
    what = f"The {name!r} of {owner}"
    number = float(value) if is_real_number(value) else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(number) and number == int(number)):
        raise InvalidInputError(f"{what} must be a whole number of hertz. Got {value!r} instead.")
    rate = int(number)
    if rate < MIN_SAMPLE_RATE:
        raise InvalidInputError(
            f"{what} must be at least {MIN_SAMPLE_RATE} Hz (below it the audio holds "
            f"nothing above {MIN_SAMPLE_RATE // 2} Hz, below every model's band; give the "
            f"rate in hertz: 16000, not 16). Got {value!r} instead."
        )
    if rate > MAX_SAMPLE_RATE:
        raise InvalidInputError(
            f"{what} must be at most {MAX_SAMPLE_RATE} Hz, above any recorder's rate "
            f"(give the rate in hertz, not the number of samples). Got "
            f"{value!r} instead."
        )
    return rate


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
