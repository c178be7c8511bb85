"""What goes wrong with weights, said so that the user can act on it."""

from __future__ import annotations

from collections.abc import Sequence


class WeightsError(ValueError):
    """Weights that cannot be found, read or trusted; the message says what to do."""


class IncompatibleWeightsError(WeightsError):
    """A state dict that does not fit the architecture: the message names the keys.

    ``missing`` are keys the model needs and the weights lack, ``unexpected`` are keys of the
    weights that the model has no place for, ``mis_shaped`` are (key, expected, found) triples.
    """

    def __init__(self, what: str, *, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 mis_shaped: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
                 hint: str = "") -> None:
        self.missing = tuple(missing)
        self.unexpected = tuple(unexpected)
        self.mis_shaped = tuple(mis_shaped)
        lines = [f"{what} do not fit:"]
        if self.missing:
            lines.append(f"  missing ({len(self.missing)}): {_preview(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected ({len(self.unexpected)}): {_preview(self.unexpected)}")
        if self.mis_shaped:
            shown = [f"{key} (model {list(want)}, weights {list(got)})" for key, want, got in self.mis_shaped]
            lines.append(f"  mis-shaped ({len(self.mis_shaped)}): {_preview(shown)}")
        if hint:
            lines.append(f"  {hint}")
        super().__init__("\n".join(lines))


def _preview(items: Sequence[str], limit: int = 6) -> str:
    # A wrong architecture can give hundreds of keys; the first few say enough.
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")
