"""Load photos robustly and preprocess them, remembering which part of the photo the model saw."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MierukaError, MierukaWarning

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif"}
    | {".ppm", ".pgm", ".pbm", ".pnm"}  # netpbm, as some data sets ship
)
# photos' suffixes a folder walk names as left out (Pillow cannot decode them): never skipped unsaid
UNREAD_PHOTO_SUFFIXES = frozenset(
    {".heic", ".heif", ".jxl", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"}
)
MAX_PIXELS = 100_000_000  # ~10,000 x 10,000; larger files are refused as possible decompression bombs
LARGEST_RESIZE = 1 << 24  # pixels a photo may have once resized whole (4096 x 4096); see Preprocess

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class ImageError(MierukaError):
    """A photo that cannot be read; the message names the file and what to do."""


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open a photo as 8-bit RGB, upright as its EXIF orientation says.

    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images are converted;
    animated GIF/WebP/TIFF give their first frame.

    >>> load_image("samples/cat.jpg").mode
    'RGB'
    """
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise ImageError(f"{path}: {_dead_link(path)}")
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, expected an image file")
    return _decode(path, str(path), max_pixels)


def _dead_link(path: Path) -> str:
    """Why the symbolic link `path` leads to no file: a loop of links, or a target that is gone."""
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        return f"a broken link (it leads to {os.readlink(path)}, which does not exist)"
    except (OSError, RuntimeError):  # ELOOP; Python before 3.13 raises RuntimeError
        pass
    return f"a link that leads round in a loop (to {os.readlink(path)} and back); point it at a photo"


def lies_in(path: Path, folder: Path) -> bool:
    """Whether `path`, its links followed, lies inside `folder` (resolved); a loop of links lies nowhere."""
    return resolved(path).is_relative_to(folder)


def resolved(path: Path) -> Path:
    """`path` with its links followed, or only made absolute where they lead round in a loop."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python before 3.13 raises RuntimeError for a loop
        return path.absolute()


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """:func:`load_image` for a photo held in memory (an upload); `name` is what error messages call it.

    >>> decode_image(Path("samples/cat.jpg").read_bytes(), "cat.jpg").size
    (451, 300)
    """
    return _decode(io.BytesIO(data), name, max_pixels)


def _decode(source: Path | io.BytesIO, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            image = Image.open(source)
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: {width}x{height} pixels is over the {max_pixels:,}-pixel limit "
                    "(a possible decompression bomb); downscale it first"
                )
            image.seek(0)
            image = ImageOps.exif_transpose(image)
            return to_rgb(image, name)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({error})") from None
    except (OSError, ValueError, SyntaxError) as error:
        # PIL raises UnidentifiedImageError (an OSError) for non-images and OSError/ValueError/SyntaxError
        # for truncated or corrupt data.
        if isinstance(error, UnidentifiedImageError):  # its text names the file object, not the photo
            empty = (
                source.getbuffer().nbytes == 0
                if isinstance(source, io.BytesIO)
                else not source.stat().st_size
            )
            error = "an empty file" if empty else "not a format Pillow knows"
        elif str(error).startswith(("image file is truncated", "Truncated File Read")):  # Pillow's words
            error = "the file ends before the image does: cut short in a copy or download?"
        raise ImageError(f"{name}: not a readable image ({error}); check the file") from None


def to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited onto white. Deeper pixels are
    scaled by their range (:func:`value_range`), said in a warning naming `name` where it is guessed."""
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top, guess = value_range(array, image.mode)
        if guess:
            warnings.warn(
                f"{name}: a {_DEPTH_NAMES.get(image.mode, '16-bit')} image whose values reach "
                f"{array.max():g}: {guess} (save it as 8-bit yourself for another scaling)",
                MierukaWarning,
                stacklevel=2,
            )
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


_DEPTH_NAMES = {"I": "32-bit integer", "F": "floating-point"}  # else I;16 and its byte orders
_DEPTHS = (8, 10, 12, 14, 16)  # the bit depths of sensors and scanners: medical, scientific, raw


def value_range(array: np.ndarray, mode: str) -> tuple[float, str]:
    """The value that stands for white in a single-channel image of PIL `mode` ('I;16', 'I', 'F'), and
    how it was read where that is a guess ('' where it is not).

    A 16-bit file often holds 10-, 12- or 14-bit data (X-rays, microscopes): read against 65535 it
    would be near black, so white is the top of the smallest usual depth that holds the values; a
    float image in [0, 1] holds fractions.
    """
    high = float(array.max()) if array.size else 0.0
    if mode == "F" and high <= 1.0:
        return 1.0, ""
    if high <= 0:  # black whatever white is
        return 255.0, ""
    bits = next((b for b in _DEPTHS if high < 2**b), None)
    if bits is None:
        return high, f"read with its highest value, {high:g}, as white"
    declared = (16,) if mode.startswith("I;16") else (8, 16)
    top = float(2**bits - 1)
    return top, "" if bits in declared else f"read as {bits}-bit data, {top:g} as white"


def find_images(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image paths; files are kept as given."""
    return [path for path, _ in find_images_relative(paths)]


def find_images_relative(
    paths: Sequence[str | os.PathLike], left_out: list[Path] | None = None
) -> list[tuple[Path, PurePath]]:
    """:func:`find_images`, each photo with its path relative to the argument that named it.

    `photos/a/cat.jpg` found in the folder `photos` comes with `a/cat.jpg`; a file named directly
    comes with its bare name. A broken link with an image's name is kept, so that a run reports it
    as a failed photo instead of leaving it out unsaid. Photos in a format Pillow cannot read (HEIC,
    camera raw) found in folders go into `left_out`, for the caller to say. A photo found twice (its
    folder and itself named) comes once, where it is first found.
    """
    found: list[tuple[Path, PurePath]] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            photos = []
            for p in entry.rglob("*"):
                suffix = p.suffix.lower()
                if suffix in IMAGE_SUFFIXES and (p.is_file() or (p.is_symlink() and not p.exists())):
                    photos.append(p)
                elif suffix in UNREAD_PHOTO_SUFFIXES and left_out is not None and p.is_file():
                    left_out.append(p)
            found.extend((photo, photo.relative_to(entry)) for photo in sorted(photos))
        else:
            found.append((entry, PurePath(entry.name)))
    once: dict[str, tuple[Path, PurePath]] = {}  # a photo named twice (its folder, and itself) comes once
    for path, place in found:
        once.setdefault(os.path.abspath(path), (path, place))
    return list(once.values())


@dataclass(frozen=True)
class CropBox:
    """The rectangle of the original photo, in its pixel coordinates, that the model input covers."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side, centre-crop, scale to [0, 1] and normalize: the torchvision recipe.

    Unlike a bare transform it also tells, through :meth:`crop_box`, where the crop lies in the original
    photo, so a map can be put back exactly where the model looked.

    `fit` says how the photo meets `resize` (one side, or (height, width)), as timm's ``crop_mode``:
    "shorter" keeps the aspect ratio and covers it (the centre crop: torchvision's rounding for one
    side, timm's for two), "squash" stretches each side to it, "longer" keeps the ratio and fits
    inside it, the crop then padding the rest with the mean colour (timm's "border").
    """

    resize: int | tuple[int, int] | None = 256
    crop: int | tuple[int, int] | None = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    fit: str = "shorter"

    def __post_init__(self) -> None:
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation must be one of {sorted(_RESAMPLE)}, got {self.interpolation!r}")
        if self.fit not in ("shorter", "squash", "longer"):
            raise ValueError(f"fit must be 'shorter', 'squash' or 'longer', got {self.fit!r}")

    def resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) after the resize step, computed as torchvision (one side) or timm does."""
        width, height = size
        if self.resize is None:
            return width, height
        if isinstance(self.resize, int) and self.fit == "shorter":
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.resize, int(self.resize * long / short)
            return (new_short, new_long) if width <= height else (new_long, new_short)
        target_height, target_width = (
            (self.resize, self.resize) if isinstance(self.resize, int) else self.resize
        )
        if self.fit == "squash":
            return target_width, target_height
        ratios = (height / target_height, width / target_width)  # timm's ResizeKeepRatio
        ratio = min(ratios) if self.fit == "shorter" else max(ratios)
        return round(width / ratio), round(height / ratio)

    def crop_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the model input for a photo of this size."""
        if self.crop is None:
            return self.resized_size(size)
        if isinstance(self.crop, int):
            return self.crop, self.crop
        crop_height, crop_width = self.crop
        return crop_width, crop_height

    def crop_box(self, size: tuple[int, int]) -> CropBox:
        """Where the model input lies in the original photo of (width, height) `size`."""
        width, height = size
        resized_width, resized_height = self.resized_size(size)
        crop_width, crop_height = self.crop_size(size)
        left, top = _crop_start(resized_width, crop_width), _crop_start(resized_height, crop_height)
        scale_x, scale_y = width / resized_width, height / resized_height
        return CropBox(
            left * scale_x, top * scale_y, (left + crop_width) * scale_x, (top + crop_height) * scale_y
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """PIL RGB image -> normalized float32 tensor (3, H, W).

        A photo so elongated that resizing it whole would make over :data:`LARGEST_RESIZE` pixels (a
        60000 x 3 strip resized to a short side of 256 is 1.3 gigapixels) has only the crop's part of
        it resampled, at the same scale; where the model would take all of it, it is refused.
        """
        resized_size = self.resized_size(image.size)
        crop_width, crop_height = self.crop_size(image.size)
        if resized_size[0] * resized_size[1] > LARGEST_RESIZE:
            image = self._resize_crop_only(image, resized_size, (crop_width, crop_height))
        elif resized_size != image.size:
            image = image.resize(resized_size, _RESAMPLE[self.interpolation])
        if (crop_width, crop_height) != image.size:
            left, top = _crop_start(image.width, crop_width), _crop_start(image.height, crop_height)
            cropped = image.crop((left, top, left + crop_width, top + crop_height))  # pads with black
            if self.fit == "longer" and (left < 0 or top < 0):  # padded: timm pads with the mean colour
                cropped = Image.new("RGB", cropped.size, tuple(round(255 * m) for m in self.mean))
                cropped.paste(image, (-left, -top))
            image = cropped
        pixels = pil_to_tensor(image)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (pixels.float() / 255.0 - mean) / std

    def _resize_crop_only(
        self, image: Image.Image, resized_size: tuple[int, int], crop_size: tuple[int, int]
    ) -> Image.Image:
        """The crop of the resized photo, resampled from the photo's pixels under it alone."""
        (resized_width, resized_height), (crop_width, crop_height) = resized_size, crop_size
        too_many = crop_width * crop_height > LARGEST_RESIZE  # the model would take it (nearly) whole
        if too_many or crop_width > resized_width or crop_height > resized_height:
            raise ImageError(
                f"a {image.width}x{image.height} photo would be resized to {resized_width}x{resized_height} "
                f"pixels for a {crop_width}x{crop_height} input: too elongated for this model; crop it first"
            )
        box = self.crop_box(image.size)
        return image.resize(
            (crop_width, crop_height),
            _RESAMPLE[self.interpolation],
            box=(box.left, box.top, box.right, box.bottom),
        )


def model_input(preprocess: Preprocess, image: Image.Image, name: str) -> torch.Tensor:
    """`preprocess(image)`, a refusal of the photo (too elongated) naming it as `name`."""
    try:
        return preprocess(image)
    except ImageError as error:  # Preprocess knows no file
        raise ImageError(f"{name}: {error}") from None


def _crop_start(size: int, crop: int) -> int:
    """Where a centred crop of `crop` pixels starts along a side of `size`, as torchvision's and timm's
    CenterCrop place it: rounded half to even inside the side, the padding's larger half after it."""
    return -((crop - size) // 2) if crop > size else round((size - crop) / 2.0)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB image -> uint8 tensor (3, H, W), sharing no memory with the image."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
