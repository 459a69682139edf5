"""The training recipe, in one typed config. Every value is written into the model card."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    # The ImageNet-pretrained network under the head (training.model.BACKBONES): "mobilenet_v2"
    # (keras.applications; --alpha applies) or "efficientnet_lite0" / "_lite1" / "_lite2" (training.backbones,
    # converted once from their PyTorch weights by `python -m training.convert_backbone`; ImageNet top-1
    # 75.1 / 76.7 / 77.6% against 71.8% for MobileNetV2 1.0). The command line sets image_size and
    # fine_tune_from to the backbone's own (native size 224 / 240 / 260) unless they are given.
    backbone: str = "mobilenet_v2"
    # MobileNetV2 width; 0.35 is the small option (2.3 MB, ~2.7x the throughput). Fine-tuned with this
    # recipe it reaches 98.50% validation accuracy against 99.13% for 1.0 (docs/experiments.md).
    alpha: float = 1.0
    # "imagenet" lets Keras download the official weights (an EfficientNet-Lite: reads the converted file in
    # training.backbones.cache_dir()); a path uses a local file (.h5; .weights.h5 for EfficientNet-Lite);
    # "none" starts from random weights (only for tests that must run without ../shared).
    weights: str = "imagenet"
    # 224 is the resolution the ImageNet weights were trained at; PBC cells are ~360 px, so little is lost.
    image_size: int = 224
    batch_size: int = 32
    seed: int = 1337

    # Phase 1: a linear head on frozen, cached backbone features. Cheap (seconds per epoch), and it
    # gives phase 2 a sensible head so fine-tuning does not wreck the pretrained features.
    head_epochs: int = 30
    head_learning_rate: float = 1e-3

    # Phase 2: fine-tune the backbone from this layer upward, with augmentation, at a low learning
    # rate on a cosine schedule. Blocks 9-16 work at 14x14 and 7x7, so their backward pass is
    # cheap on a CPU, while the early high-resolution blocks (generic edges) stay frozen.
    fine_tune_from: str = "block_9_expand"
    fine_tune_epochs: int = 14
    fine_tune_learning_rate: float = 2e-4
    # Optional stochastic weight averaging (Izmailov et al., 2018): end the cosine schedule above zero
    # and keep the mean of the last epochs' weights (safe because BatchNormalization stays frozen).
    # Tried on 2026-11-24 with block_7_expand, 16 epochs, floor 0.1 and the last 5 epochs averaged:
    # validation accuracy 99.05% against 99.13% for these defaults, so it is off by default.
    final_learning_rate_fraction: float = 0.0
    average_last_epochs: int = 1
    weight_decay: float = 1e-5

    dropout: float = 0.2
    # Softens one-hot targets: PBC's immature granulocytes and band neutrophils shade into each
    # other, and hard targets push the network to memorise the borderline cells. Temperature
    # scaling afterwards restores calibrated confidences.
    label_smoothing: float = 0.1
    # Class weights = (balanced weight) ** power: 1.0 is fully balanced, 0.0 ignores imbalance.
    class_weight_power: float = 0.5
    # Phase 2 weight of an auxiliary loss on the manifest's subtypes (0 = off), from a second head on the
    # same pooled features that is dropped before saving. ig is four cell types (promyelocyte, myelocyte,
    # metamyelocyte, unspecified) and neutrophil two (band, segmented); most errors fall between
    # metamyelocytes and band neutrophils (6 of the shipped model's 8 validation errors), which the subtype
    # labels tell apart from the other members of their classes. Images without a subtype (class-folder
    # data, another lab's crops) add nothing to it. Tried at 0.5 on 2026-11-25 (runs 19-21 in
    # docs/experiments.md): validation accuracy fell (the two-seed average 98.81% against 99.37%), so it is off.
    subtype_loss_weight: float = 0.0
    # Phase 2 weight of an auxiliary loss on the manifest's WBCAtt attributes (0 = off): a training-only
    # head on block 13's activations averaged over the whole map, the layer `training.attributes` fits its
    # heads on. Trained for classes alone, that layer keeps little of nucleus shape and cell size, which the
    # class loss never asks for; the WBCAtt paper's ResNet-50, trained on the attributes themselves, reaches
    # 94.1% mean accuracy. Cells without attributes add nothing to it. Tried at 1.0 on 2026-12-01 (run 27 in
    # docs/experiments.md, when the shipped heads still read the whole map): attribute val accuracy 91.99% ->
    # 92.98%, short of the rule it was run under, and PBC test 98.26% against 98.36%, so it is off.
    attribute_loss_weight: float = 0.0

    # Augmentation fit for smear images: orientation is meaningless, so all flips and 90-degree
    # turns; magnification, focus and staining vary between slides and labs. The ranges were widened
    # (zoom 0.12 -> 0.2, hue 0.04 -> 0.06, blur added, ...) together with mixing in BCCD crops, for
    # cells from other labs: larger and softer than PBC's, on a bluer background.
    zoom: float = 0.2
    # Largest zoom-out: when above 0, half the views show the cell smaller, down to (1 - zoom_out) of
    # its size, with the smear mirrored outward to fill the frame.
    zoom_out: float = 0.0
    shift: float = 0.06
    brightness: float = 0.1
    contrast: float = 0.2
    saturation: float = 0.25
    hue: float = 0.06
    # Largest Gaussian blur sigma, in pixels at the model's input size, drawn uniformly per image:
    # other labs' cameras and lower magnifications give softer cells than the CellaVision DM96.
    blur: float = 1.5
    # Stain jitter in colour-deconvolution space (Tellez et al., 2018): each stain's optical density
    # (Ruifrok-Johnston matrix) scaled by 1 +- stain and shifted by +- stain / 4, drawn per image.
    # Another lab's stain batch changes how much of each dye binds, which hue and saturation jitter in
    # RGB does not imitate (a redder eosin is not a rotated hue). 0 = off.
    stain: float = 0.0
    # Share of views degraded like a cheaper camera: shrunk to between degrade_scale and 1 of their
    # side, JPEG-compressed at quality 40-95, and enlarged back. 0 = off.
    degrade: float = 0.0
    degrade_scale: float = 0.35
    # Share of views recoloured as another lab's smear: each stain's optical density scaled by a factor
    # drawn log-uniformly in [other_lab_dye, 1 / sqrt(other_lab_dye)], then the light dimmed by a neutral
    # optical density of up to other_lab_light and tinted by up to +- other_lab_tint per channel. Measured
    # on BCCD's training crops (2026-12-01): their nuclei carry 0.57 of PBC's haematoxylin density and
    # 0.36 of its eosin, and their glass is grey (205 per channel) where PBC's is warm (255, 228, 203), far
    # outside `stain`'s +-20%. 0 = off.
    other_lab: float = 0.0
    other_lab_dye: float = 0.35
    other_lab_light: float = 0.25
    other_lab_tint: float = 0.12
    # Share of views shown in grey (luminance in all three channels). Another lab's dyes move a cell's
    # colour, not its shape: grey views make the network read nucleus lobes, granules and chromatin too,
    # not only the colours that tell eosinophils from neutrophils in PBC's stain. Tried at 0.2 on 2026-12-02
    # (run 37 in docs/experiments.md, leave one lab out): BCCD 67.4% against 77.4% without it, so it is off.
    grey: float = 0.0
    # Inside the model, before the backbone: each image's stain density set to this (the 99th percentile of
    # its optical density summed over channels, against its own glass colour; PBC's nuclei: about 4.0,
    # BCCD's: about 1.3). So every path, training and the app alike, sees a faint lab's dyes at the
    # training lab's strength. 0 = off.
    density_target: float = 0.0

    # Another lab's labelled images, as <folder>/{train,val,test}/<class>/ (for instance the BCCD crops
    # written by `python -m training.bccd --export-crops`). Its train images join training, repeated
    # `extra_repeat` times because there are few of them (166 BCCD photos cropped at two margins,
    # 332 crops x 4, are about 12% of an epoch); its val images join calibration; its val and test
    # splits are scored and recorded as "<folder name>_val" and "<folder name>_test".
    extra_data: str = ""
    extra_repeat: int = 4
    # A third lab, the Chula video microscope (../shared/data/chula: manifest.csv with crop, class, sequence and
    # split columns). Its train split joins training, repeated `chula_repeat` times; its test split is scored
    # as "chula_test". The manifest splits by whole sequences (consecutive frames show the same cell: about 30
    # distinct cells in 511 crops), and training refuses a manifest where a sequence falls in both splits.
    chula: str = ""
    chula_repeat: int = 1
    # Red cells alone, trained towards no class (outlier exposure, Hendrycks et al., 2019): up to `red_cells` PBC
    # train images with their cell removed (training.red_cells) join the fine-tuning phase with the uniform
    # distribution as their target, each weighted `red_cell_weight`. Without them the network learned "no white
    # cell here" as platelet: a field of red cells is called platelet at 0.99, and a platelet's heatmap lies on the
    # red cells around it (docs/experiments.md, 2026-12-06). 0 = off.
    red_cells: int = 0
    red_cell_weight: float = 0.5
    # Start from an earlier run's model (its artifact folder) instead of ImageNet: phase 1 is skipped and phase 2
    # continues that model's fine-tuning with this run's options. For a change that must keep what the earlier run
    # learned: run 39 (red cells from ImageNet) lost the heatmaps' grip on the cell, while 3 epochs continuing
    # run 35 kept it (docs/experiments.md, 2026-12-06). The card records the earlier run's command. "" = off.
    init_from: str = ""

    # The "uncertain" flag: lowest confidence above which validation predictions are this accurate.
    threshold_target_accuracy: float = 0.995
