"""Image datasets for VQGAN training, loaded with `datasets`.

- `load_image_dataset`: a Hub dataset, a local dataset (a `save_to_disk` folder or a folder
  `load_dataset` understands), an image folder, Fashion-MNIST from its IDX files, or the emoji
  dataset (`taming_hf.data.emoji`).
- `ImageTransform`: decode (with an error naming the corrupt file), RGB or grayscale,
  resize, center or random crop, optional flip, scale to [-1, 1].
"""

import gzip
import io
import json
import os
import struct
from typing import Any, Dict, List, Optional, Union

import numpy as np
import PIL.Image
import torch
from datasets import ClassLabel, Dataset, Features, Image, IterableDataset, load_dataset, load_from_disk
from datasets import config as datasets_config
from torchvision import transforms
from torchvision.transforms import functional as TF

from ..data.emoji import load_emoji_dataset
from ..models.vqgan.image_processing_vqgan import to_pixel_values

EMOJI_NAMES = ("emoji",)
FASHION_MNIST_NAMES = ("fashion_mnist", "fashion-mnist", "zalando-datasets/fashion_mnist")
FASHION_MNIST_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
# Zalando's class names (the Hub dataset's ClassLabel spells the first one "T - shirt / top").
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
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally gzipped), e.g. `train-images-idx3-ubyte.gz` -> (60000, 28, 28) uint8."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=_IDX_DTYPES[dtype_code], offset=4 + 4 * ndim).reshape(shape)


def _idx_path(data_dir: str, stem: str) -> str:
    for name in (f"{stem}.gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"Fashion-MNIST file {stem}(.gz) not found in {data_dir}.")


def _cached_class_names(cache: str) -> Optional[List[str]]:
    """The class names of a cached split, or None when there is none (an older release's cache may carry other
    names, and is rebuilt then)."""
    try:
        with open(os.path.join(cache, "dataset_info.json")) as f:
            return json.load(f)["features"]["label"]["names"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_fashion_mnist(
    split: str = "train", data_dir: str = FASHION_MNIST_DIR, max_samples: Optional[int] = None
) -> Dataset:
    """
    Fashion-MNIST from its IDX files as a `datasets.Dataset` with the Hub dataset's features:
    `image` (`Image`, 28x28 grayscale) and `label` (`ClassLabel`, 10 classes).

    Args:
        split: "train" (60000 images) or "test" (10000).
        max_samples: keep only the first `max_samples` images.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"Fashion-MNIST has splits 'train' and 'test', got {split!r}.")
    images = read_idx(_idx_path(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_idx_path(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if max_samples is not None:
        images, labels = images[:max_samples], labels[:max_samples]
    cache = os.path.join(datasets_config.HF_DATASETS_CACHE, "taming_hf", f"fashion_mnist-{split}")
    if max_samples is None and _cached_class_names(cache) == FASHION_MNIST_CLASSES:
        return load_from_disk(cache)
    features = Features({"image": Image(), "label": ClassLabel(names=FASHION_MNIST_CLASSES)})
    dataset = Dataset.from_dict(
        {"image": [PIL.Image.fromarray(image, mode="L") for image in images], "label": labels.astype(np.int64)},
        features=features,
    )
    if max_samples is None:  # encoding 60000 PNGs takes a while: keep them for next time
        dataset.save_to_disk(cache)
        dataset = load_from_disk(cache)
    return dataset


def load_image_dataset(
    dataset_name: Optional[str] = None,
    dataset_config_name: Optional[str] = None,
    train_data_dir: Optional[str] = None,
    split: str = "train",
    streaming: bool = False,
    cache_dir: Optional[str] = None,
    max_samples: Optional[int] = None,
) -> Union[Dataset, IterableDataset]:
    """
    Load one split of an image dataset.

    `dataset_name` may be a Hub id, a local `save_to_disk` folder, or a local folder / script
    `load_dataset` understands; `fashion_mnist` reads the local IDX files when they exist
    (`FASHION_MNIST_DIR`, by default the Debian `dataset-fashion-mnist` location) and the Hub
    otherwise; `emoji` is `taming_hf.load_emoji_dataset` at 64 px (`cache_dir`, when given, is its
    cache folder). `train_data_dir` loads an image folder (`imagefolder`, with labels from
    sub-folder names).
    """
    if (dataset_name is None) == (train_data_dir is None):
        raise ValueError("Pass exactly one of dataset_name and train_data_dir.")
    if dataset_name is not None and dataset_name.lower() in EMOJI_NAMES:
        dataset = load_emoji_dataset(split, cache_dir=cache_dir)
        if max_samples is not None:
            dataset = dataset.select(range(min(max_samples, len(dataset))))
        return dataset.to_iterable_dataset() if streaming else dataset
    if dataset_name is not None and dataset_name.lower() in FASHION_MNIST_NAMES:
        if os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-labels-idx1-ubyte.gz")):
            dataset = load_fashion_mnist(split, max_samples=max_samples)
            return dataset.to_iterable_dataset() if streaming else dataset
        dataset_name = "zalando-datasets/fashion_mnist"
    if dataset_name is not None and os.path.isdir(dataset_name) and _is_saved_dataset(dataset_name):
        dataset = load_from_disk(dataset_name)
        dataset = dataset[split] if hasattr(dataset, "keys") else dataset
        dataset = dataset.to_iterable_dataset() if streaming else dataset
    elif dataset_name is not None:
        dataset = load_dataset(
            dataset_name, dataset_config_name, split=split, streaming=streaming, cache_dir=cache_dir
        )
    else:
        dataset = load_dataset("imagefolder", data_dir=train_data_dir, split=split, streaming=streaming)
    if max_samples is not None:
        dataset = dataset.take(max_samples) if streaming else dataset.select(range(min(max_samples, len(dataset))))
    return dataset


def load_labeled_images(
    dataset_name: str,
    split: str,
    image_column: str = "image",
    label_column: Optional[str] = "label",
    resolution: int = 28,
    num_channels: int = 1,
    max_samples: Optional[int] = None,
):
    """
    A whole (small) labeled split in memory, for classifier training and evaluation.

    Returns:
        images (`torch.FloatTensor` of shape `(N, num_channels, resolution, resolution)`) in [-1, 1],
        labels (`torch.LongTensor` of shape `(N,)`), and the class names (or None); with
        `label_column=None` (a dataset without labels, e.g. `emoji`) labels and names are None.
    """
    dataset = load_image_dataset(dataset_name=dataset_name, split=split, max_samples=max_samples)
    for column in (image_column, label_column) if label_column is not None else (image_column,):
        if column not in dataset.column_names:
            raise ValueError(f"Column {column!r} not found in {dataset_name}; its columns are {dataset.column_names}.")
    mode = "L" if num_channels == 1 else "RGB"
    images = np.stack(
        [np.asarray(image.convert(mode).resize((resolution, resolution))) for image in dataset[image_column]]
    )
    images = to_pixel_values(torch.from_numpy(images))
    images = images[:, None] if num_channels == 1 else images.permute(0, 3, 1, 2)
    if label_column is None:
        return images.contiguous(), None, None
    labels = torch.tensor(dataset[label_column], dtype=torch.long)
    names = getattr(dataset.features[label_column], "names", None)
    return images.contiguous(), labels, names


def _is_saved_dataset(path: str) -> bool:
    return os.path.exists(os.path.join(path, "dataset_info.json")) or os.path.exists(
        os.path.join(path, "dataset_dict.json")
    )


def check_image_column(dataset: Union[Dataset, IterableDataset], image_column: str) -> None:
    """Raise a clear error if `image_column` is missing, listing the columns there are."""
    columns = dataset.column_names
    if columns is not None and image_column not in columns:
        raise ValueError(f"--image_column '{image_column}' not found in the dataset; its columns are {columns}.")


def prepare_for_decoding(dataset: Union[Dataset, IterableDataset], image_column: str):
    """Turn off automatic decoding of `image_column`, so `ImageTransform` can name corrupt files."""
    feature = dataset.features[image_column] if dataset.features is not None else None
    if isinstance(feature, Image):
        dataset = dataset.cast_column(image_column, Image(decode=False))
    return dataset


def decode_image(value: Any) -> PIL.Image.Image:
    """
    Decode one image as stored by `datasets` (`{"path", "bytes"}` with decoding off), a PIL
    image, a path or a numpy array. A file PIL cannot read raises a `ValueError` naming it.
    """
    if isinstance(value, PIL.Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return PIL.Image.fromarray(value)
    path, data = (value, None) if isinstance(value, str) else (value.get("path"), value.get("bytes"))
    source = io.BytesIO(data) if data is not None else path
    try:
        image = PIL.Image.open(source)
        image.load()
    except Exception as error:
        name = path if path else "<image bytes without a file name>"
        raise ValueError(f"Cannot decode image {name}: {type(error).__name__}: {error}") from error
    return image


ROW_COLUMN = "__row__"


class ImageTransform:
    """
    Decoded image -> (C, resolution, resolution) float tensor in [-1, 1].

    Random crops and flips are drawn from a generator seeded by `(seed, epoch, row)` when the
    row index is known, so augmentations do not depend on the global RNG: a resumed run (or
    one with more data-loader workers) sees exactly the augmentations of an uninterrupted one.

    Args:
        resolution: side of the square output; the short side is resized to it (bicubic).
        center_crop: center crop (else random crop) after resizing.
        random_flip: random horizontal flip.
        num_channels: 3 converts to RGB, 1 to grayscale.
        seed: base seed of the augmentations.
        random_hue_prob: the fraction of images whose hue is rotated by a uniformly random angle (RGB only; 0 off).
            A tokenizer must reconstruct every colour, but most data sets are dominated by a few hues (60% of the
            emoji's saturated pixels are red to yellow, 1% purple to magenta): rotated copies show it the rest.
    """

    def __init__(
        self,
        resolution: int,
        center_crop: bool = True,
        random_flip: bool = False,
        num_channels: int = 3,
        seed: int = 0,
        random_hue_prob: float = 0.0,
    ):
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels}.")
        if not 0.0 <= random_hue_prob <= 1.0:
            raise ValueError(f"random_hue_prob must be between 0 and 1, got {random_hue_prob}.")
        if random_hue_prob > 0 and num_channels != 3:
            raise ValueError(f"random_hue_prob needs RGB images (num_channels 3), got num_channels {num_channels}.")
        self.resolution = resolution
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.mode = "L" if num_channels == 1 else "RGB"
        self.seed = seed
        self.random_hue_prob = random_hue_prob
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self, row: Optional[int]) -> Optional[torch.Generator]:
        if row is None:
            return None  # no row index (streaming): the global RNG
        return torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_000_007 + row) % 2**63)

    def __call__(self, value: Any, row: Optional[int] = None) -> torch.Tensor:
        image = decode_image(value).convert(self.mode)
        image = TF.resize(image, self.resolution, interpolation=transforms.InterpolationMode.BICUBIC)
        generator = self._generator(row)
        if self.center_crop:
            image = TF.center_crop(image, [self.resolution, self.resolution])
        else:
            width, height = image.size
            top = int(torch.randint(0, height - self.resolution + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - self.resolution + 1, (1,), generator=generator))
            image = TF.crop(image, top, left, self.resolution, self.resolution)
        if self.random_flip and float(torch.rand((), generator=generator)) < 0.5:
            image = TF.hflip(image)
        if self.random_hue_prob > 0 and float(torch.rand((), generator=generator)) < self.random_hue_prob:
            image = TF.adjust_hue(image, float(torch.rand((), generator=generator)) - 0.5)
        return to_pixel_values(TF.pil_to_tensor(image))


def add_row_index(dataset: Dataset) -> Dataset:
    """Add a `__row__` column (0..n-1) that seeds each example's augmentations."""
    return dataset.add_column(ROW_COLUMN, list(range(len(dataset))))


def make_preprocess_fn(transform: ImageTransform, image_column: str):
    """Batched `with_transform` / `map` function: `image_column` -> `pixel_values` (list of tensors)."""

    def preprocess(examples: Dict[str, List]) -> Dict[str, List[torch.Tensor]]:
        rows = examples.get(ROW_COLUMN, [None] * len(examples[image_column]))
        return {"pixel_values": [transform(value, row) for value, row in zip(examples[image_column], rows)]}

    return preprocess


def collate_fn(examples: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """List of {"pixel_values": (C, H, W)} -> {"pixel_values": (B, C, H, W)}, contiguous float."""
    pixel_values = torch.stack([example["pixel_values"] for example in examples])
    return {"pixel_values": pixel_values.to(memory_format=torch.contiguous_format).float()}
