"""How images must be prepared for a set of weights. Plain data: the weights registry and
weights files carry it, ``effnet.data.transforms`` turns it into a transform."""

from __future__ import annotations

from dataclasses import asdict, dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite: mean 127 / std 128 on 0..255 (official lite preprocessing).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


def tf_crop_fraction(size: int) -> float:
    """The official TF eval crop: a centre crop of size / (size + 32) of the short side."""
    return size / (size + 32)


@dataclass(frozen=True)
class Preprocessing:
    """Eval preprocessing: resize the short side to ``floor(input_size / crop_fraction)``
    with ``interpolation``, centre-crop ``input_size``, scale to 0..1, normalise."""

    input_size: int = 224
    crop_fraction: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is unknown; choose one of {INTERPOLATIONS}")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std need one value per channel")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def tf_efficientnet(cls, input_size: int, mean: tuple[float, ...] = IMAGENET_MEAN,
                        std: tuple[float, ...] = IMAGENET_STD) -> Preprocessing:
        return cls(input_size, tf_crop_fraction(input_size), "bicubic", mean, std)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Preprocessing:
        fields = {k: data[k] for k in ("input_size", "crop_fraction", "interpolation", "mean", "std") if k in data}
        return cls(**fields)  # type: ignore[arg-type]
