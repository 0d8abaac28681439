"""New "takes" of marked sounds for training: the marked audio mixed into other places.

A scanner trained on a few marked calls learns those recordings of the sound;
the same sound recorded again (another take, another background) can look
different enough to be missed. :class:`MixAugmentation` cuts the audio around
each positive marker (from ``before`` seconds before to ``after`` seconds
after it, faded in and out), changes its gain and optionally its speed
(resampling: pitch and duration move together) and tone (two random peaking
filters), and adds it to another place of a training recording, at least
``min_distance`` seconds from every marker there. Each result is a short
segment of that recording with the sound mixed in and the moment where the
marker now lies; embedding the segment's windows gives extra positive
training windows with a new background.

On the wolf benchmark (README, "Augmentation by default") one copy at ±4 dB
helps three to five markers, and three copies 0-10 dB quieter help all twenty;
``Scanner(augmentation="auto")``, the default, runs :data:`AUTO_AUGMENTATION`
for 3 to 5 positive markers and :data:`AUTO_MANY_AUGMENTATION` for more markers
spread over at least four recordings. ``Scanner(augmentation=...)`` uses it in ``fit``
(:mod:`audio_embed.scanner.augmented`).
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence

import numpy as np
from attrs import converters, field, frozen

from audio_embed.errors import InvalidInputError
from audio_embed.types import check_sample_rate

__all__ = [
    "AUTO_AUGMENTATION",
    "AUTO_MANY_AUGMENTATION",
    "MixAugmentation",
    "MixedSound",
    "warn_skipped",
]

log = logging.getLogger(__name__)

#: Random places tried for each copy before it is skipped.
PLACE_TRIES = 1000


def _pair(value: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    return lo, hi


@frozen(kw_only=True, eq=False)
class MixedSound:
    """One marked sound mixed into a recording.

    ``audio``: the recording from ``start`` seconds on (mono float32 at the
    sample rate given to :meth:`MixAugmentation.mix`), with the sound added;
    ``marker``: where the marked moment now lies, in seconds of the
    recording (not of the segment); ``source``: (recording, marker) indices
    of the sound; ``background``: index of the recording it was mixed into.
    """

    audio: np.ndarray
    start: float
    marker: float
    source: tuple[int, int]
    background: int
    speed: float
    gain_db: float


@frozen(kw_only=True)
class MixAugmentation:
    """How to make new takes of marked sounds (see the module docstring).

    Args:
        copies: copies of each marked sound per recording it is mixed into.
        gain_db: range of the random gain (dB) applied to the cut audio.
        speed: range of the random speed factor (1 = unchanged, 1.05 = 5 %
            faster and higher).
        eq_db: with ``> 0``, two peaking filters of a random gain in
            ``±eq_db`` dB at random frequencies of 200-6000 Hz (Q 1).
        before, after: the cut, in seconds before and after the marker.
        min_distance: seconds between a new place and every marker of the
            recording it goes into.
        context: seconds of the recording kept before and after the new
            place (what windows and context features around it need).
        step: new places are multiples of this many seconds (the scan hop,
            so that the windows there are the recording's own windows).
        seed: seed of every random choice.
        draws: how many independent draws of the copies ``Scanner.fit`` makes
            (draw ``k`` at ``seed + k``); it trains one classifier per draw and
            scans with the mean of their probabilities, at the mean of their
            cross-validated thresholds (:meth:`CalibratedClassifier.fit_draws
            <audio_embed.CalibratedClassifier.fit_draws>`). One draw's copies
            are a lottery that averaging steadies (README, "Several draws
            averaged"); each draw costs a fit and its threshold's cross-validation.
        lowpass_hz: a (low, high) range in Hz, or None (default): half of the
            copies, chosen at random, have the cut sound low-passed (a brick
            wall, as a lossy codec's) at a random cut-off in that range, so that
            the classifier also learns the sound without its highs (README,
            "Errors and limits": recordings whose codec cut the highs).
    """

    copies: int = 1
    gain_db: tuple[float, float] = field(default=(-4.0, 4.0), converter=_pair)
    speed: tuple[float, float] = field(default=(1.0, 1.0), converter=_pair)
    eq_db: float = 0.0
    before: float = 0.05
    after: float = 2.0
    min_distance: float = 8.0
    context: tuple[float, float] = field(default=(3.0, 4.0), converter=_pair)
    step: float = 0.1
    seed: int = 0
    draws: int = 1
    lowpass_hz: tuple[float, float] | None = field(
        default=None, converter=converters.optional(_pair)
    )

    def __attrs_post_init__(self) -> None:
        name = "MixAugmentation"
        for key in ("copies", "draws"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InvalidInputError(
                    f"The {key!r} parameter of {name} must be a whole number. "
                    f"Got {value!r} instead."
                )
        checks: list[tuple[str, float | tuple[float, float], bool, str]] = [
            ("copies", self.copies, self.copies >= 0, ">= 0"),
            ("gain_db", self.gain_db, self.gain_db[0] <= self.gain_db[1], "a (low, high) range"),
            ("speed", self.speed, 0 < self.speed[0] <= self.speed[1], "a (low, high) range > 0"),
            ("eq_db", self.eq_db, self.eq_db >= 0, ">= 0"),
            ("before", self.before, self.before >= 0, ">= 0 seconds"),
            ("after", self.after, self.after > 0, "> 0 seconds"),
            ("min_distance", self.min_distance, self.min_distance >= 0, ">= 0 seconds"),
            ("context", self.context, min(self.context) >= 0, ">= 0 seconds each"),
            ("step", self.step, self.step > 0, "> 0 seconds"),
            ("draws", self.draws, self.draws >= 1, ">= 1"),
        ]
        if self.lowpass_hz is not None:
            lo, hi = self.lowpass_hz
            checks.append(("lowpass_hz", self.lowpass_hz, 0 < lo <= hi, "a (low, high) range > 0"))
        for key, value, ok, want in checks:
            if not (ok and np.isfinite(np.asarray(value, dtype=np.float64)).all()):
                raise InvalidInputError(
                    f"The {key!r} parameter of {name} must be {want}. Got {value!r} instead."
                )

    def mix(
        self,
        sources: Sequence[tuple[np.ndarray, Sequence[float]]],
        backgrounds: Sequence[tuple[np.ndarray, Sequence[float]]],
        sample_rate: int = 16000,
        *,
        names: Sequence[str] | None = None,
    ) -> list[MixedSound]:
        """Mix every marked sound of ``sources`` into every recording of ``backgrounds``.

        ``sources``: (audio, positive marker times) per recording;
        ``backgrounds``: (audio, every marker time, which new places keep away
        from) per recording; both mono at ``sample_rate``. A copy for which
        no place is found (a recording too short or too densely marked) is
        skipped with a warning naming the recording (``names[j]`` for
        ``backgrounds[j]``, else its number). The same inputs and seed give the
        same result.
        """
        out, skipped = self.mix_counted(sources, backgrounds, sample_rate)
        tried = self.copies * sum(len(m) for _, m in sources)
        warn_skipped(self, skipped, tried, backgrounds, sample_rate, names=names)
        return out

    def mix_counted(
        self,
        sources: Sequence[tuple[np.ndarray, Sequence[float]]],
        backgrounds: Sequence[tuple[np.ndarray, Sequence[float]]],
        sample_rate: int = 16000,
    ) -> tuple[list[MixedSound], list[int]]:
        """:meth:`mix` without its warning: the mixed sounds, and for each of
        ``backgrounds`` how many copies found no place there (for one warning over
        several draws, :func:`warn_skipped`)."""
        sample_rate = check_sample_rate(sample_rate, "MixAugmentation.mix")
        rng = np.random.default_rng(self.seed)
        out: list[MixedSound] = []
        skipped = [0] * len(backgrounds)
        for i, (audio, markers) in enumerate(sources):
            for k, t in enumerate(markers):
                cut = self._cut(np.asarray(audio, dtype=np.float32), float(t), sample_rate)
                for j, (bg, known) in enumerate(backgrounds):
                    for _ in range(self.copies):
                        mixed = self._mix_one(cut, np.asarray(bg), known, rng, sample_rate)
                        if mixed is None:
                            skipped[j] += 1
                            continue
                        seg, start, marker, speed, gain = mixed
                        out.append(MixedSound(audio=seg, start=start, marker=marker,
                                              source=(i, k), background=j, speed=speed,
                                              gain_db=gain))  # fmt: skip
        return out, skipped

    def _cut(self, audio: np.ndarray, t: float, sr: int) -> np.ndarray:
        lo, hi = round((t - self.before) * sr), round((t + self.after) * sr)
        cut = audio[max(0, lo) : max(0, hi)].copy()
        fade_in, fade_out = min(round(0.02 * sr), len(cut)), min(round(0.1 * sr), len(cut))
        cut[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)
        cut[len(cut) - fade_out :] *= np.linspace(1, 0, fade_out, dtype=np.float32)
        return cut

    def _mix_one(
        self,
        cut: np.ndarray,
        background: np.ndarray,
        known: Sequence[float],
        rng: np.random.Generator,
        sr: int,
    ) -> tuple[np.ndarray, float, float, float, float] | None:
        speed = float(rng.uniform(*self.speed))
        gain = float(rng.uniform(*self.gain_db))
        x = cut
        if abs(speed - 1) > 1e-3:  # played `speed` times faster: resampled to 1/speed
            x = _speed_change(x, speed)
        if self.eq_db > 0:
            x = self._equalise(x, rng, sr)
        if self.lowpass_hz is not None and rng.random() < 0.5:
            x = _lowpass(x, float(rng.uniform(*self.lowpass_hz)), sr)
        x = x * np.float32(10 ** (gain / 20))
        duration = len(background) / sr
        lo, hi = self.context[0] + 1.0, duration - self.context[1] - 1.0
        marks = np.asarray(known, dtype=np.float64)
        for _ in range(PLACE_TRIES):
            u = round(float(rng.uniform(lo, hi)) / self.step) * self.step if hi > lo else -1.0
            if u >= 0 and (not len(marks) or np.abs(marks - u).min() >= self.min_distance):
                break
        else:
            return None
        first = round((u - self.context[0]) * sr)
        seg = background[first : round((u + self.context[1]) * sr)].astype(np.float32)
        at = round((self.context[0] - self.before / speed) * sr)
        seg[at : at + len(x)] += x[: len(seg) - at]
        return seg, first / sr, u, speed, gain

    def _equalise(self, x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
        import torch
        import torchaudio.functional as AF

        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        for _ in range(2):
            db = float(rng.uniform(-self.eq_db, self.eq_db))
            hz = float(np.exp(rng.uniform(np.log(200.0), np.log(6000.0))))
            t = AF.equalizer_biquad(t, sr, hz, db, Q=1.0)
        out: np.ndarray = t.numpy()
        return out


def warn_skipped(
    aug: MixAugmentation,
    skipped: Sequence[int],
    tried: int,
    backgrounds: Sequence[tuple[np.ndarray, Sequence[float]]],
    sample_rate: int,
    *,
    names: Sequence[str] | None = None,
    draws: int = 1,
) -> None:
    """One warning per recording of ``backgrounds`` where copies found no place:
    ``skipped[j]`` of the ``tried`` copies (over every draw: one warning per fit,
    not one per draw)."""
    over = f" over {draws} draws" if draws > 1 else ""
    for j, n in enumerate(skipped):  # one warning per recording, not one per copy
        if n:
            name = names[j] if names is not None else f"recording {j}"
            seconds = len(backgrounds[j][0]) / sample_rate
            log.warning("No place %.1f s from every marker in %s (%.1f s long): %d of %d "
                        "copies skipped%s.", aug.min_distance, name, seconds, n, tried,
                        over)  # fmt: skip


def _speed_change(x: np.ndarray, speed: float) -> np.ndarray:
    """``x`` played ``speed`` times faster: resampled by 1000 / round(1000 · speed) with
    torchaudio's sinc filter (as :func:`audio_embed.audio.resample`, whose rates are
    those of recordings, not a ratio)."""
    import torch
    import torchaudio.functional as AF

    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    out: np.ndarray = AF.resample(tensor, round(1000 * speed), 1000).numpy()
    return out


def _lowpass(x: np.ndarray, cutoff: float, sr: int) -> np.ndarray:
    """``x`` with nothing above ``cutoff`` Hz (its spectrum's bins there set to 0)."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / sr) > cutoff] = 0
    return np.fft.irfft(spectrum, len(x)).astype(np.float32)


#: What ``Scanner(augmentation="auto")`` (the default) and ``train --augment auto`` run
#: for few markers (:func:`audio_embed.scanner.augmented.decide_augmentation`); also
#: the settings of ``train --augment N`` with ``copies=N``.
AUTO_AUGMENTATION = MixAugmentation(copies=1, speed=(0.95, 1.05))
#: What ``augmentation="auto"`` runs for many markers spread over several recordings
#: (:func:`~audio_embed.scanner.augmented.decide_augmentation`): three copies of each
#: marked sound per recording, mixed in 0-10 dB quieter than marked (the calls to find
#: are often fainter than the ones marked), at 0.95-1.05 times the speed, in three
#: draws whose classifiers are averaged. On the wolf benchmark with all twenty markers
#: (four recordings) three copies ranked windows better than one copy at ±4 dB; with
#: five markers or fewer, or markers in two or three recordings, they did worse or were
#: a lottery (README, "Augmentation by default"). One draw's result still moved with
#: its seed (test lenient F1 0.55-0.71); the average of three draws scored 0.64-0.67
#: at every set of seeds measured, and better on the training split too (README,
#: "Several draws averaged").
AUTO_MANY_AUGMENTATION = MixAugmentation(
    copies=3, gain_db=(-10.0, 0.0), speed=(0.95, 1.05), draws=3
)
