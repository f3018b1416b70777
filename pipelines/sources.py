"""Data sources: each a function (section, split) -> Dataset of scenes, registered by name in
config.DATA_SOURCES. stream_scenes reads any of them lazily, by index range (SceneStream): what
simulate reads from, in constant memory whatever the number of frames."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .config import DATA_SOURCES, SYNTHETIC_SIZE, DataSection, RunConfig

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class DataError(ValueError):
    """Data that is missing or unreadable; the message says how to fix it."""


@dataclass
class Dataset:
    """Scenes as uint8 arrays (H, W) or (H, W, 3), labels (or None), and a name per item."""

    images: list[np.ndarray]
    labels: np.ndarray | None
    class_names: list[str]
    names: list[str]
    fps: float | None = None  # video sources
    masks: list[np.ndarray] | None = None  # segmentation sources: class id per pixel (H, W)


def content_digest(dataset: Dataset, count: int | None = None) -> str:
    """A digest of the first `count` scenes (all by default), their labels and masks: what the
    files read gave, so a capture cache or a resumed run notices pictures replaced on disk."""
    digest = hashlib.blake2b(digest_size=16)
    count = len(dataset.images) if count is None else count
    for group in (dataset.images[:count], [] if dataset.masks is None else dataset.masks[:count]):
        for array in group:
            digest.update(f"{array.shape}{array.dtype}".encode())
            digest.update(np.ascontiguousarray(array).data)
    if dataset.labels is not None:
        digest.update(np.ascontiguousarray(dataset.labels[:count], dtype=np.int64).data)
    return digest.hexdigest()


def load_dataset(section: DataSection, split: str | None = None) -> Dataset:
    """The scenes of `section` (its split unless `split` is given), limited and resized as it says."""
    dataset = DATA_SOURCES.get(section.source)(section, split or section.split)
    if section.limit is not None:
        dataset = _first(dataset, section.limit)
    if section.size is not None:
        if len(section.size) != 2 or min(section.size) < 1:
            raise DataError(f"data.size must be [H, W] positive, got {section.size}")
        height, width = section.size
        dataset.images = [_resized(image, section.size) for image in dataset.images]
        if dataset.masks is not None:
            dataset.masks = [cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in dataset.masks]
    return dataset


Scene = tuple[np.ndarray, int | None, str]  # (image (H, W) or (H, W, 3) uint8, label or None, name)


@dataclass
class SceneStream:
    """Scenes read on demand by index range, so no whole-dataset list is formed.

    Args:
        count: number of scenes.
        class_names: the label names (empty for a source without labels).
        read: (start, stop) -> the scenes start..stop-1 in order; 0 <= start <= stop <= count.
        fps: frames per second of a video source, else None.
    """

    count: int
    class_names: list[str]
    read: Callable[[int, int], Iterator[Scene]]
    fps: float | None = None

    @classmethod
    def of(cls, dataset: Dataset) -> SceneStream:
        """A loaded Dataset as a stream (sources small enough to hold in memory)."""

        def read(start: int, stop: int) -> Iterator[Scene]:
            for i in range(start, stop):
                yield dataset.images[i], None if dataset.labels is None else int(dataset.labels[i]), dataset.names[i]

        return cls(len(dataset.images), dataset.class_names, read, dataset.fps)

    def collect(self) -> Dataset:
        """Every scene, loaded."""
        scenes = list(self.read(0, self.count))
        labels = [label for _, label, _ in scenes]
        return Dataset(
            [image for image, _, _ in scenes],
            None if not scenes or labels[0] is None else np.asarray(labels, np.int64),
            self.class_names,
            [name for _, _, name in scenes],
            self.fps,
        )


def stream_scenes(section: DataSection, split: str | None = None) -> SceneStream:
    """The scenes of `section` as a stream: limited, resized and repeated (`data.repeat` passes,
    scene i % count for item i) as it says. Fashion-MNIST, image folders and videos are read by
    range; the other sources are small and are loaded whole."""
    split = split or section.split
    maker = _STREAMS.get(section.source)
    stream = maker(section, split) if maker else SceneStream.of(DATA_SOURCES.get(section.source)(section, split))
    count = stream.count if section.limit is None else min(stream.count, section.limit)
    size = section.size

    def read(start: int, stop: int) -> Iterator[Scene]:
        while start < stop:  # one pass over the scenes at a time
            first, offset = start % count, start - start % count
            last = min(count, first + stop - start)
            for image, label, name in stream.read(first, last):
                yield (
                    image if size is None else _resized(image, size),
                    label,
                    name,
                )
            start = offset + last

    return SceneStream(count * section.repeat, stream.class_names, read, stream.fps)


def _resized(image: np.ndarray, size: list[int]) -> np.ndarray:
    """A scene resized to data.size [H, W] (area averaging)."""
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _first(dataset: Dataset, count: int) -> Dataset:
    """The first `count` items."""
    keep = slice(0, count)
    return Dataset(
        dataset.images[keep],
        None if dataset.labels is None else dataset.labels[keep],
        dataset.class_names,
        dataset.names[keep],
        dataset.fps,
        None if dataset.masks is None else dataset.masks[keep],
    )


class _IdxFile:
    """A gzipped IDX file of unsigned bytes, read item range by item range: a forward read
    decompresses only what lies between, so consecutive ranges cost one pass in all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = gzip.open(path)  # noqa: SIM115 - kept open between range reads
        try:
            head = self._file.read(4)
        except (EOFError, OSError) as err:
            raise DataError(f"{path} is not a gzipped IDX file ({err})") from None
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 8:
            raise DataError(f"{path} is not an IDX file of unsigned bytes")
        dims_bytes = self._file.read(4 * head[3])
        self.dims = [int.from_bytes(dims_bytes[4 * i : 4 * i + 4], "big") for i in range(head[3])]
        self._offset = 4 + 4 * head[3]
        self._item = int(np.prod(self.dims[1:], dtype=np.int64))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Items start..stop-1, shape (stop - start, *dims[1:])."""
        try:
            self._file.seek(self._offset + start * self._item)
            data = self._file.read((stop - start) * self._item)
        except (EOFError, OSError) as err:  # a cut or damaged gzip stream
            raise DataError(f"{self.path} cannot be read past item {start} ({err})") from None
        if len(data) != (stop - start) * self._item:
            raise DataError(f"{self.path} is truncated: it ends before item {stop} of {self.dims[0]}")
        return np.frombuffer(data, np.uint8).reshape(stop - start, *self.dims[1:])


def fashion_mnist(section: DataSection, split: str) -> Dataset:
    return _fashion_mnist_stream(section, split).collect()


def _fashion_mnist_stream(section: DataSection, split: str) -> SceneStream:
    root = Path(section.root or FASHION_MNIST_ROOT)
    prefix = "train" if split == "train" else "t10k"
    images_path, labels_path = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_path.exists() or not labels_path.exists():
        raise DataError(
            f"Fashion-MNIST is not in {root} (expected {images_path.name} and {labels_path.name}); "
            "install it with `apt-get install dataset-fashion-mnist` "
            "or set data.root to a folder with the IDX .gz files"
        )
    images, labels_file = _IdxFile(images_path), _IdxFile(labels_path)
    labels = labels_file.read(0, labels_file.dims[0]).astype(np.int64)
    if images.dims[0] != len(labels):
        raise DataError(f"{images_path} holds {images.dims[0]} images but {labels_path} {len(labels)} labels")

    def read(start: int, stop: int) -> Iterator[Scene]:
        for i, image in enumerate(images.read(start, stop), start):
            yield image, int(labels[i]), f"{split}-{i:05d}"

    return SceneStream(len(labels), FASHION_MNIST_CLASSES, read)


def cifar10(section: DataSection, split: str) -> Dataset:
    """A local CIFAR-10 folder in the python-pickle format (data_batch_1..5, test_batch), read with
    a restricted unpickler that builds only that format's dicts, lists, strings, numbers and uint8
    arrays: a crafted batch file cannot run code."""
    if section.root is None:
        raise DataError("data.root must name a CIFAR-10 folder (cifar-10-batches-py); nothing is downloaded")
    root = Path(section.root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    files = [root / f"data_batch_{i}" for i in range(1, 6)] if split == "train" else [root / "test_batch"]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise DataError(f"CIFAR-10 folder {root} lacks {', '.join(missing)} (the python-pickle format)")
    images, labels = [], []
    for path in files:
        batch = _read_cifar_pickle(path)
        data, batch_labels = batch.get("data"), batch.get("labels")
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
            raise DataError(f"{path}: 'data' must be a uint8 array (N, 3072), as in CIFAR-10's python format")
        if not isinstance(batch_labels, list) or len(batch_labels) != len(data):
            raise DataError(f"{path}: 'labels' must be a list of {len(data)} class indices, one per image")
        batch_labels = np.asarray(batch_labels)
        if batch_labels.dtype.kind not in "iu" or ((batch_labels < 0) | (batch_labels >= 10)).any():
            raise DataError(f"{path}: 'labels' must be class indices in [0, 10)")
        images.extend(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(batch_labels.tolist())
    names = CIFAR10_CLASSES
    meta = root / "batches.meta"
    if meta.exists():
        names = _read_cifar_pickle(meta).get("label_names")
        if not (isinstance(names, list) and len(names) == 10 and all(isinstance(n, str) for n in names)):
            raise DataError(f"{meta}: 'label_names' must be a list of 10 strings")
    return Dataset(images, np.asarray(labels, np.int64), names, [f"{split}-{i:05d}" for i in range(len(labels))])


class _CifarUnpickler(pickle.Unpickler):
    """Builds containers, strings, numbers and numpy arrays, scalars and dtypes; any other class or
    function a pickle names (the way a pickle runs code) is refused."""

    ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused {module}.{name}: a CIFAR-10 batch holds only arrays and lists")
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="latin1").load()
    except Exception as err:  # a pickle can fail in any way; each is "not a CIFAR-10 batch"
        raise DataError(f"{path} is not a CIFAR-10 pickle batch: {err}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 pickle batch: it holds a {type(batch).__name__}, not a dict")
    if any(isinstance(value, np.ndarray) and value.dtype.hasobject for value in batch.values()):
        raise DataError(f"{path} is not a CIFAR-10 pickle batch: it holds an array of Python objects")
    return batch


def image_folder(section: DataSection, split: str) -> Dataset:
    """PNG/JPEG files, one sub-folder per class (files directly in the folder form one class)."""
    return _image_folder_stream(section, split).collect()


def _image_folder_stream(section: DataSection, split: str) -> SceneStream:
    if section.root is None:
        raise DataError("data.root must name a folder of images (one sub-folder per class)")
    root = Path(section.root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) or ["."]
    files = [
        (path, label)
        for label, cls in enumerate(classes)
        for path in sorted((root / cls).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DataError(f"no PNG or JPEG images in {root}")

    def read(start: int, stop: int) -> Iterator[Scene]:
        for path, label in files[start:stop]:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError(f"cannot read image {path}")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), label, str(path.relative_to(root))

    return SceneStream(len(files), classes, read)


def skimage_samples(section: DataSection, split: str) -> Dataset:
    """scikit-image's bundled sample pictures: a built-in default for camera simulation."""
    import skimage.data

    names = ["astronaut", "camera", "cat", "chelsea", "coffee", "rocket", "coins", "moon"]
    images = []
    for name in names:
        image = getattr(skimage.data, name)()
        images.append(image if image.dtype == np.uint8 else (image * 255).astype(np.uint8))
    return Dataset(images, None, [], names)


def video(section: DataSection, split: str) -> Dataset:
    return _video_stream(section, split).collect()


def _video_stream(section: DataSection, split: str) -> SceneStream:
    """The video's frames (up to data.limit), counted by one pass of grab() that
    converts no frame."""
    if section.path is None:
        raise DataError("data.path must name a video file")
    capture = _open_video(section.path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    count = 0
    while (section.limit is None or count < section.limit) and capture.grab():
        count += 1
    capture.release()
    if not count:
        raise DataError(f"the video {section.path} has no readable frames")

    def read(start: int, stop: int) -> Iterator[Scene]:
        capture = _open_video(section.path)
        try:
            for _ in range(start):
                capture.grab()
            for i in range(start, stop):
                ok, bgr = capture.read()
                if not ok:
                    raise DataError(f"the video {section.path} ends at frame {i}, before frame {stop - 1}")
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, f"frame-{i:06d}"
        finally:
            capture.release()

    return SceneStream(count, [], read, fps)


def _open_video(path: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise DataError(f"OpenCV cannot open the video {path}")
    return capture


def synthetic(section: DataSection, split: str) -> Dataset:
    """Shapes on textured noise, one shape per class: small, deterministic data for tests."""
    size = section.size or SYNTHETIC_SIZE
    rng = np.random.default_rng(0 if split == "train" else 1)
    images, labels = [], []
    for i in range(section.count):
        label = i % section.classes
        image = (rng.random((size[0], size[1])) * 60).astype(np.uint8)
        center = rng.integers(size[0] // 4, 3 * size[0] // 4, 2)
        radius = max(2, size[0] // 5)
        if label % 3 == 0:
            cv2.circle(image, (int(center[1]), int(center[0])), radius, 220, -1)
        elif label % 3 == 1:
            cv2.rectangle(
                image,
                (int(center[1] - radius), int(center[0] - radius)),
                (int(center[1] + radius), int(center[0] + radius)),
                220,
                -1,
            )
        else:
            points = np.array(
                [
                    [center[1], center[0] - radius],
                    [center[1] - radius, center[0] + radius],
                    [center[1] + radius, center[0] + radius],
                ]
            )
            cv2.fillPoly(image, [points.astype(np.int32)], 220)
        images.append(np.ascontiguousarray(np.roll(image, label // 3 * 3, axis=1)))
        labels.append(label)
    return Dataset(
        images,
        np.asarray(labels, np.int64),
        [f"class{k}" for k in range(section.classes)],
        [f"{split}-{i:05d}" for i in range(section.count)],
    )


def segmentation_folder(section: DataSection, split: str) -> Dataset:
    """ROOT/SPLIT/images/*.png with ROOT/SPLIT/masks/*.png of class ids (as `privcam make-shapes` writes)."""
    if section.root is None:
        raise DataError("data.root must name a segmentation folder (make one with `privcam make-shapes OUT`)")
    images_dir, masks_dir = Path(section.root) / split / "images", Path(section.root) / split / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{Path(section.root) / split} needs images/ and masks/ (make one with `privcam make-shapes`)")
    images, masks, names = [], [], []
    for path in sorted(images_dir.glob("*.png")):
        mask = cv2.imread(str(masks_dir / path.name), cv2.IMREAD_UNCHANGED)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None or mask is None:
            raise DataError(f"cannot read {path} and its mask {masks_dir / path.name}")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        masks.append(mask.astype(np.int64))
        names.append(path.name)
    from .shapes import SHAPE_CLASSES

    return Dataset(images, None, SHAPE_CLASSES, names, masks=masks)


def fashion_mnist_segmentation(section: DataSection, split: str) -> Dataset:
    """Fashion-MNIST foreground segmentation: the mask is the garment's pixels (value > 24)."""
    dataset = fashion_mnist(section, split)
    dataset.masks = [(image > 24).astype(np.int64) for image in dataset.images]
    dataset.class_names, dataset.labels = ["background", "garment"], None
    return dataset


def load_masks(config: RunConfig, split: str, limit: int | None = None) -> torch.Tensor:
    """Segmentation targets (N, H, W) int64 in scene order."""
    dataset = load_dataset(config.data, split)
    if dataset.masks is None:
        raise DataError(f"data source {config.data.source!r} has no masks; use a segmentation source")
    masks = dataset.masks if limit is None else dataset.masks[:limit]
    return torch.from_numpy(np.stack(masks))


# The sources read by index range; the others are loaded whole (SceneStream.of).
_STREAMS = {"fashion_mnist": _fashion_mnist_stream, "image_folder": _image_folder_stream, "video": _video_stream}
