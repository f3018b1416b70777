"""A generated multi-object scene dataset for segmentation: textured shapes on textured clutter.

    privcam make-shapes OUT [--train 2000] [--test 400] [--size 64] [--seed 0]

writes OUT/{train,test}/images/NNNNNN.png (RGB scenes) and OUT/{train,test}/masks/NNNNNN.png
(class ids: 0 background, 1 disc, 2 square, 3 triangle), which the `segmentation_folder` data
source reads.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data
from tqdm import tqdm

from ..base.images import write_png

SHAPE_CLASSES = ["background", "disc", "square", "triangle"]
_TEXTURE_SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel")


def _textures(size: int) -> list[np.ndarray]:
    textures = []
    for name in _TEXTURE_SOURCES:
        image = getattr(skimage.data, name)()
        image = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        textures.append(cv2.resize(image[..., :3], (4 * size, 4 * size), interpolation=cv2.INTER_AREA))
    return textures


def _patch(textures: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    texture = textures[rng.integers(len(textures))]
    top, left = rng.integers(0, texture.shape[0] - size, 2)
    return texture[top : top + size, left : left + size]


def make_scene(textures: list[np.ndarray], size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One RGB scene (size, size, 3) uint8 and its mask of class ids."""
    image = (_patch(textures, size, rng) * rng.uniform(0.4, 0.8)).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(3, 8))):  # clutter: thin strokes that belong to the background
        start, end = rng.integers(0, size, 2), rng.integers(0, size, 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.line(image, tuple(map(int, start)), tuple(map(int, end)), colour, 1)
    for _ in range(int(rng.integers(1, 4))):
        label = int(rng.integers(1, len(SHAPE_CLASSES)))
        shape_mask = np.zeros((size, size), np.uint8)
        radius = int(rng.integers(size // 10, size // 4))
        cx, cy = (int(v) for v in rng.integers(radius, size - radius, 2))
        if label == 1:
            cv2.circle(shape_mask, (cx, cy), radius, 1, -1)
        elif label == 2:
            angle = rng.uniform(0, 90)
            box = cv2.boxPoints(((cx, cy), (2 * radius, 2 * radius), angle)).astype(np.int32)
            cv2.fillPoly(shape_mask, [box], 1)
        else:
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
            points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1).astype(np.int32)
            cv2.fillPoly(shape_mask, [points], 1)
        inside = shape_mask.astype(bool)
        texture = _patch(textures, size, rng).astype(np.float32) * rng.uniform(0.9, 1.3) + rng.uniform(10, 60)
        image[inside] = np.clip(texture[inside], 0, 255).astype(np.uint8)
        mask[inside] = label
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), mask


def make_shapes_dataset(out: Path, train: int = 2000, test: int = 400, size: int = 64, seed: int = 0) -> Path:
    textures = _textures(size)
    for split, count, offset in (("train", train, 0), ("test", test, 1)):
        rng = np.random.default_rng([seed, offset])
        images_dir, masks_dir = out / split / "images", out / split / "masks"
        images_dir.mkdir(parents=True, exist_ok=True)
        masks_dir.mkdir(parents=True, exist_ok=True)
        for index in tqdm(range(count), desc=f"shapes {split}", unit="scene"):
            image, mask = make_scene(textures, size, rng)
            write_png(images_dir / f"{index:06d}.png", image)
            write_png(masks_dir / f"{index:06d}.png", mask)
    return out
