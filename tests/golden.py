"""Golden numbers from ../shared/reference/efficientnet.md (sections 3 and 4) and the
canonical PyTorch baselines. Tests compare against these; nothing here is computed."""

PARAMS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
    "efficientnet_b8": 87_413_142,
    "efficientnet_l2": 480_309_308,
    "efficientnet_lite0": 4_652_008,
    "efficientnet_lite1": 5_416_680,
    "efficientnet_lite2": 6_092_072,
    "efficientnet_lite3": 8_197_096,
    "efficientnet_lite4": 13_006_568,
    "mobilenet_v2": 3_504_872,  # torchvision mobilenet_v2
    "resnet50": 25_557_032,  # torchvision resnet50
}

# Multiply-adds at native resolution (reference section 3), in billions.
MADDS_B = {
    "efficientnet_b0": 0.386,
    "efficientnet_b1": 0.687,
    "efficientnet_b2": 0.994,
    "efficientnet_b3": 1.827,
    "efficientnet_b4": 4.394,
    "efficientnet_b5": 10.266,
    "efficientnet_b6": 19.068,
    "efficientnet_b7": 37.746,
    "mobilenet_v1": 0.569,  # MobileNetV1 1.0-224 (Howard et al. 2017)
}

# Head channels and (out channels, repeats) per stage (reference section 3).
STAGES = {
    "efficientnet_b0": (1280, "16x1 24x2 40x2 80x3 112x3 192x4 320x1"),
    "efficientnet_b1": (1280, "16x2 24x3 40x3 80x4 112x4 192x5 320x2"),
    "efficientnet_b2": (1408, "16x2 24x3 48x3 88x4 120x4 208x5 352x2"),
    "efficientnet_b3": (1536, "24x2 32x3 48x3 96x5 136x5 232x6 384x2"),
    "efficientnet_b4": (1792, "24x2 32x4 56x4 112x6 160x6 272x8 448x2"),
    "efficientnet_b5": (2048, "24x3 40x5 64x5 128x7 176x7 304x9 512x3"),
    "efficientnet_b6": (2304, "32x3 40x6 72x6 144x8 200x8 344x11 576x3"),
    "efficientnet_b7": (2560, "32x4 48x7 80x7 160x10 224x10 384x13 640x4"),
    "efficientnet_b8": (2816, "32x4 56x8 88x8 176x11 248x11 424x15 704x4"),
    "efficientnet_l2": (5504, "72x6 104x11 176x11 344x16 480x16 824x22 1376x6"),
    "efficientnet_lite0": (1280, "16x1 24x2 40x2 80x3 112x3 192x4 320x1"),
    "efficientnet_lite1": (1280, "16x1 24x3 40x3 80x4 112x4 192x5 320x1"),
    "efficientnet_lite2": (1280, "16x1 24x3 48x3 88x4 120x4 208x5 352x1"),
    "efficientnet_lite3": (1280, "24x1 32x3 48x3 96x5 136x5 232x6 384x1"),
    "efficientnet_lite4": (1280, "24x1 32x4 56x4 112x6 160x6 272x8 448x1"),
}

# EfficientNetV2 trainable parameters, 1000 classes (shared/reference/efficientnetv2.md 3.1:
# timm tf_efficientnetv2_* = torchvision = the official test's counts less BN statistics).
V2_PARAMS = {
    "efficientnetv2_b0": 7_139_704, "efficientnetv2_b1": 8_141_052, "efficientnetv2_b2": 10_096_086,
    "efficientnetv2_b3": 14_358_406, "efficientnetv2_s": 21_458_488, "efficientnetv2_m": 54_139_356,
    "efficientnetv2_l": 118_515_272, "efficientnetv2_xl": 208_119_808,
}
# Multiply-adds (billions) at the eval size: the official README (B0..L) and timm's benchmark
# for XL (reference 3.2).
V2_MADDS_B = {
    "efficientnetv2_b0": 0.72, "efficientnetv2_b1": 1.2, "efficientnetv2_b2": 1.7, "efficientnetv2_b3": 3.0,
    "efficientnetv2_s": 8.4, "efficientnetv2_m": 24.7, "efficientnetv2_l": 56.3, "efficientnetv2_xl": 93.85,
}
