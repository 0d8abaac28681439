"""Float32 comparisons that hold on any x86 CPU, thread count and FFT backend.

Two rules, from what float32 can promise (see ``tests/data``'s vectors README,
"Tolerances observed"):

* **Log energies** (raw fbank bins) are compared relative to their magnitude:
  the lowest-energy bins sum many tiny terms, so their logs move by ~1e-4
  between CPUs (AVX-512 or not) and between float32 and float64, while a wrong
  constant, window or a missing pre-emphasis moves them by 0.1 to 10.
* **Normalised model input and features** (the contract between a front end
  and its encoder) are compared with an absolute tolerance scaled by the
  array's own magnitude, so a tensor whose values are ~10 gets a ~10× wider
  band than one whose values are ~1.

Tests that use these also show that the tolerance still catches a typical mistake.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "assert_log_energies_close",
    "assert_scaled_close",
    "log_energy_violations",
    "scaled_error",
]


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def log_energy_violations(
    actual: torch.Tensor | np.ndarray,
    expected: torch.Tensor | np.ndarray,
    *,
    atol: float = 1e-4,
    rtol: float = 5e-5,
) -> int:
    """How many elements differ by more than ``atol + rtol·|expected|``."""
    a, e = _np(actual), _np(expected)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    return int((np.abs(a - e) > atol + rtol * np.abs(e)).sum())


def assert_log_energies_close(
    actual: torch.Tensor | np.ndarray,
    expected: torch.Tensor | np.ndarray,
    *,
    atol: float = 1e-4,
    rtol: float = 5e-5,
    what: str = "log energies",
) -> None:
    """Log-energy values agree to ``atol + rtol·|expected|`` element by element.

    A bin at −16 (energy ~1e-7) gets 9e-4; a bin near 0 gets 1e-4. Observed
    spread across CPUs and float32/float64: 1.9e-4 at −15.8.
    """
    bad = log_energy_violations(actual, expected, atol=atol, rtol=rtol)
    if bad:
        err = np.abs(_np(actual) - _np(expected)).max()
        raise AssertionError(f"{what}: {bad} element(s) out of tolerance (max abs error {err:.3g})")


def scaled_error(actual: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray) -> float:
    """Max abs error divided by ``max(1, max |expected|)``."""
    a, e = _np(actual), _np(expected)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    return float(np.abs(a - e).max() / max(1.0, float(np.abs(e).max())))


def assert_scaled_close(
    actual: torch.Tensor | np.ndarray,
    expected: torch.Tensor | np.ndarray,
    tol: float,
    what: str = "values",
) -> None:
    """``max |actual − expected| <= tol · max(1, max |expected|)``."""
    err = scaled_error(actual, expected)
    assert err <= tol, f"{what}: max abs error / magnitude {err:.3g} > {tol:g}"
