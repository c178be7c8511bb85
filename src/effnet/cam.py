"""Class activation maps (Zhou et al., CVPR 2016), as in the EfficientNet paper's Figure 7.

With global average pooling followed by one linear layer, the logit of class k is
``mean over (h, w) of sum_c W[k, c] * F[c, h, w] + b[k]``, where F is the final feature map
(``model.forward_features``). The sum inside, ``W[k] . F[:, h, w]``, is how much each location
adds to class k: that map, with negative evidence cut by a ReLU, normalised to 0..1 and
upsampled to the input, is the CAM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image
from torch import nn

from .data.images import to_rgb
from .data.transforms import model_input, transforms_for
from .device import resolve_device
from .figures import new_figure, save_png


@dataclass(frozen=True)
class ClassActivationMap:
    """A CAM for one image and one class.

    ``image`` is the input as the model saw it (resized and centre-cropped, before
    normalisation); ``heatmap`` is the CAM at that size, in 0..1; ``raw`` is the unnormalised
    map at feature-map resolution (its mean plus the class bias is the class logit).
    """

    image: Image.Image
    heatmap: np.ndarray
    raw: np.ndarray
    class_index: int
    class_name: str
    probability: float


def class_activation_map(image: Image.Image, model: nn.Module, class_index: int | None = None,
                         device: str | torch.device | None = None) -> ClassActivationMap:
    """The CAM of ``class_index`` (default: the top class) for one PIL image."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear) or not hasattr(model, "forward_features"):
        raise ValueError("a class activation map needs a classifier model (forward_features, then global "
                         "average pooling and one linear layer); this model has no linear classifier")
    num_classes = classifier.out_features
    if class_index is not None and not 0 <= class_index < num_classes:
        raise ValueError(f"class index {class_index} is out of range: this model has classes 0..{num_classes - 1}")
    device = resolve_device(device)
    transform = transforms_for(model)
    x = model_input(to_rgb(image), transform).unsqueeze(0)
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode():
            dtype = next(model.parameters()).dtype
            features = model.forward_features(x.to(device, dtype)).float()
            probs = model.forward_head(features).float().softmax(dim=1)[0]
            k = int(probs.argmax()) if class_index is None else class_index
            raw = torch.einsum("c,chw->hw", classifier.weight[k].float(), features[0])
    finally:
        model.train(was_training)
    heat = F.interpolate(raw.clamp(min=0)[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    # Normalise after upsampling so the hottest input pixel is exactly 1; with no positive
    # evidence anywhere the map stays all zero.
    heat = heat / heat.max() if heat.max() > 0 else heat
    names = getattr(model, "class_names", None)
    return ClassActivationMap(
        image=_as_seen(x[0], transform), heatmap=heat.cpu().numpy(), raw=raw.cpu().numpy(), class_index=k,
        class_name=names[k] if names else f"class {k}", probability=float(probs[k]))


def _as_seen(x: torch.Tensor, transform: nn.Module) -> Image.Image:
    """Undo the normalisation of a model input: the crop the model saw, as an image."""
    for step in getattr(transform, "transforms", []):
        if hasattr(step, "mean") and hasattr(step, "std"):
            mean = torch.tensor(step.mean).view(-1, 1, 1)
            std = torch.tensor(step.std).view(-1, 1, 1)
            x = x * std + mean
    array = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    if array.shape[2] == 1:  # a grey model (Fashion-MNIST) saw one plane
        return Image.fromarray(array[..., 0], mode="L").convert("RGB")
    return Image.fromarray(array)


def overlay(image: Image.Image, heatmap: np.ndarray, colormap: str = "jet", alpha: float = 0.5) -> Image.Image:
    """The heatmap coloured with a matplotlib colormap and blended over the image."""
    colours = colormaps[colormap](heatmap)[..., :3]  # H x W x RGBA in 0..1
    base = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    blended = (1 - alpha) * base + alpha * colours
    return Image.fromarray((blended * 255).round().astype(np.uint8))


def save_cam(cam: ClassActivationMap, path: str, colormap: str = "jet", alpha: float = 0.5,
             title: str | None = None) -> None:
    """A two-panel PNG in the style of the paper's Figure 7: the input, and the CAM over it."""
    fig = new_figure(8, 4.4, dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(cam.image)
    left.set_title("input (as the model sees it)", fontsize=10)
    right.imshow(overlay(cam.image, cam.heatmap, colormap, alpha))
    label = cam.class_name if cam.class_name == f"class {cam.class_index}" else f"{cam.class_name} ({cam.class_index})"
    right.set_title(f"CAM: {label}, p = {cam.probability:.1%}", fontsize=10)
    for axis in (left, right):
        axis.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    # A user's --out in a folder that does not exist is a typo to report, not a folder to make.
    save_png(fig, path, dpi=None, tight=False, make_folder=False)
