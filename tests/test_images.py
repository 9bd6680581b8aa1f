"""Loading photos of every kind, and preprocessing that knows where its crop lies."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from conftest import SAMPLES
from mieruka.errors import MierukaWarning
from mieruka.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageError,
    Preprocess,
    find_images,
    find_images_relative,
    load_image,
)


def _photo(width=64, height=48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("suffix", ["jpg", "png", "webp", "bmp", "tiff", "gif"])
def test_every_common_format_loads_as_rgb(tmp_path, suffix):
    path = tmp_path / f"photo.{suffix}"
    _photo().save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)


@pytest.mark.parametrize(
    ("mode", "pixel", "expected"),
    [
        ("L", 100, (100, 100, 100)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("RGBA", (255, 0, 0, 0), (255, 255, 255)),  # fully transparent red composites to white
        ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
        ("I;16", 65535, (255, 255, 255)),
        ("I;16", 32896, (128, 128, 128)),
    ],
)
def test_modes_are_converted_to_the_right_rgb(tmp_path, mode, pixel, expected):
    path = tmp_path / ("photo.tiff" if mode in ("CMYK", "I;16") else "photo.png")
    Image.new(mode, (4, 3), pixel).save(path)
    assert load_image(path).getpixel((1, 1)) == expected


@pytest.mark.parametrize(
    ("values", "dtype", "white", "said"),
    [
        (4095, np.uint16, 4095, "read as 12-bit data, 4095 as white"),  # an X-ray's 12 bits in 16
        (1023, np.uint16, 1023, "read as 10-bit data, 1023 as white"),
        (200, np.uint16, 255, "read as 8-bit data, 255 as white"),
        (65535, np.uint16, 65535, None),  # the whole 16-bit range: nothing guessed
        (1.0, np.float32, 1.0, None),  # a float image of fractions
        (200.0, np.float32, 255, None),  # a float image of 8-bit values
    ],
)
def test_deep_pixels_are_scaled_by_the_depth_they_use_and_a_guess_is_said(
    tmp_path, values, dtype, white, said
):
    """A 16-bit file holding 12-bit data read against 65535 would be near black (its brightest pixel
    16 of 255): white is the top of the smallest usual depth that holds the values, in a warning."""
    ramp = np.linspace(0, values, 64).reshape(8, 8).astype(dtype)
    path = tmp_path / ("deep.tiff" if dtype == np.float32 else "deep.png")
    Image.fromarray(ramp).save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = load_image(path)
    expected = np.clip(ramp.astype(np.float64) / white * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(image)[..., 0], expected)
    messages = [str(w.message) for w in caught if issubclass(w.category, MierukaWarning)]
    if said is None:
        assert messages == []
    else:
        assert len(messages) == 1 and messages[0].startswith(f"{path}: a ") and said in messages[0]


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    image.info["transparency"] = 1
    image.putpixel((0, 0), 1)
    path = tmp_path / "palette.png"
    image.save(path, transparency=1)
    loaded = load_image(path)
    assert loaded.getpixel((0, 0)) == (255, 255, 255) and loaded.getpixel((2, 2)) == (0, 0, 255)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera says: rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    upright = load_image(path)
    assert upright.size == (20, 40)
    red, green, _ = upright.getpixel((10, 2))  # the red edge is now on top
    assert red > 200 and green < 50


def test_first_frame_of_an_animation(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert load_image(path).getpixel((4, 4))[0] > 200


def test_one_pixel_image_runs_through_preprocessing(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    assert Preprocess()(load_image(path)).shape == (3, 224, 224)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not an image", r"not a readable image \(not a format Pillow knows\)"),
        (b"", r"not a readable image \(an empty file\)"),  # a copy that failed, say
        (None, "no such file"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=rf"bad\.jpg: {message}"):
        load_image(path)


def test_truncated_file_is_reported(tmp_path):
    buffer = io.BytesIO()
    _photo(200, 200).save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:300])
    with pytest.raises(ImageError, match=r"cut\.png"):
        load_image(path)


@pytest.mark.parametrize("kept", [0.5, 200])  # half the file, or only its first 200 bytes (its header)
def test_a_jpeg_cut_short_says_so_not_how_many_bytes_pillow_had_left(tmp_path, kept):
    buffer = io.BytesIO()
    _photo(200, 200).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: int(len(buffer.getvalue()) * kept) if kept < 1 else kept])
    with pytest.raises(
        ImageError, match=r"cut\.jpg: not a readable image \(the file ends before the image does"
    ):
        load_image(path)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(path)  # tiny file, 144 megapixels
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(path)


def test_preprocessing_matches_torchvision_exactly():
    image = load_image(SAMPLES / "cat.jpg")
    reference = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    torch.testing.assert_close(Preprocess()(image), reference(image), rtol=0, atol=1e-6)


def test_a_strip_photo_is_resampled_under_its_crop_alone_at_the_same_scale(monkeypatch):
    """A 60000 x 3 strip resized whole to a short side of 256 would be 1.3 gigapixels; only the part
    under the crop is resampled, and it matches the whole resize and crop where that fits in memory."""
    import mieruka.images as images

    rng = np.random.default_rng(0)
    strip = Image.fromarray(rng.integers(0, 256, (12, 3000, 3), dtype=np.uint8), "RGB")  # 64000 x 256 resized
    preprocess = Preprocess(interpolation="bicubic")
    whole = preprocess(strip)
    monkeypatch.setattr(images, "LARGEST_RESIZE", 100_000)  # now the strip is too long to resize whole
    alone = preprocess(strip)
    assert alone.shape == whole.shape == (3, 224, 224)
    assert (alone - whole).abs().max() <= 1.01 / 255 / 0.224  # at most a level, where the box rounds
    monkeypatch.setattr(images, "LARGEST_RESIZE", 1 << 24)
    huge = Image.new("RGB", (60000, 3))
    assert preprocess(huge).shape == (3, 224, 224)  # in a blink and a few megabytes
    with pytest.raises(
        ImageError, match=r"60000x3 photo would be resized to 5120000x256 pixels .* crop it first"
    ):
        Preprocess(crop=None)(huge)  # the model would take all of it


@pytest.mark.parametrize("size", [(149, 100), (150, 101), (224, 99)])
def test_a_crop_larger_than_the_photo_pads_as_torchvision_does(size):
    """An odd amount of padding puts its larger half after the photo (not a half-to-even rounding)."""
    photo = _photo(*size)
    reference = T.Compose([T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    torch.testing.assert_close(Preprocess(None, 224)(photo), reference(photo), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("crop_mode", "img_size", "crop_pct"),
    [
        ("squash", 224, 0.9),  # each side stretched to 248, then cropped: the ratio is not kept
        ("squash", 384, 1.0),  # ConvNeXt's 384 fine-tunes: the whole photo, squashed
        ("border", 224, 1.0),  # the whole photo fitted inside, padded with the mean colour
        ("center", (96, 160), 0.9),  # a non-square input: timm's ResizeKeepRatio, then the crop
        ("squash", (96, 160), 0.95),
    ],
)
@pytest.mark.parametrize("photo_size", [(451, 300), (200, 333)])
def test_timm_crop_modes_give_the_pixels_timm_s_own_transform_gives(
    crop_mode, img_size, crop_pct, photo_size
):
    from timm.data.transforms_factory import transforms_imagenet_eval

    from mieruka.models import _resize_for

    photo = _photo(*photo_size)
    fit = {"center": "shorter", "squash": "squash", "border": "longer"}[crop_mode]
    crop = img_size if isinstance(img_size, int) else tuple(img_size)
    ours = Preprocess(_resize_for(crop, crop_pct), crop, interpolation="bicubic", fit=fit)
    theirs = transforms_imagenet_eval(img_size, crop_pct, crop_mode, interpolation="bicubic")
    assert (ours(photo) - theirs(photo)).abs().max() < 1e-5
    box = ours.crop_box(photo.size)  # and the box says where those pixels came from
    if crop_mode == "squash" and crop_pct == 1.0:
        assert (box.left, box.top, box.right, box.bottom) == (0, 0, *photo.size)


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (4000, 3000), (224, 224), (100, 60)])
def test_crop_box_is_where_the_input_pixels_come_from(size):
    """Paint a square; after preprocessing, its edges must sit where the crop box says."""
    width, height = size
    photo = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = int(width * 0.45), int(height * 0.4), int(width * 0.6), int(height * 0.7)
    photo[y0:y1, x0:x1] = 255
    preprocess = Preprocess(mean=(0, 0, 0), std=(1, 1, 1), interpolation="nearest")
    tensor = preprocess(Image.fromarray(photo))[0]
    box = preprocess.crop_box(size)
    columns = torch.nonzero(tensor.amax(0) > 0.5).flatten()
    scale = (box.right - box.left) / tensor.shape[1]
    assert abs(box.left + columns.min().item() * scale - x0) <= scale + 1
    assert abs(box.left + (columns.max().item() + 1) * scale - x1) <= scale + 1


def test_find_images_walks_folders_and_keeps_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.PNG", "sub/c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = find_images([tmp_path, tmp_path / "notes.txt"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.PNG",
        "b.jpg",
        "sub/c.webp",
        "notes.txt",
    ]


@pytest.mark.parametrize("suffix", ["jfif", "jpe", "avif", "ppm", "pgm"])
def test_other_names_of_formats_pillow_reads_are_found_and_load(tmp_path, suffix):
    """A .jfif is a JPEG, .avif is decoded by Pillow 11.3 and later, .ppm/.pgm are netpbm."""
    photo = _photo().convert("L") if suffix == "pgm" else _photo()
    photo.save(tmp_path / f"photo.{suffix}", format={"jfif": "JPEG", "jpe": "JPEG"}.get(suffix))
    (found,) = find_images([tmp_path])
    assert found.name == f"photo.{suffix}" and load_image(found).size == (64, 48)


def test_a_photo_named_twice_is_found_once_where_it_is_first_found(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "sub/b.jpg"):
        (tmp_path / name).write_bytes(b"")
    found = find_images_relative([tmp_path, tmp_path / "sub" / "b.jpg", tmp_path / "sub" / ".." / "a.jpg"])
    assert [place.as_posix() for _, place in found] == ["a.jpg", "sub/b.jpg"]


def test_photos_in_formats_pillow_cannot_read_are_left_out_by_name(tmp_path):
    for name in ("a.jpg", "b.HEIC", "c.dng", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    left_out: list = []
    found = find_images_relative([tmp_path], left_out)
    assert [place.as_posix() for _, place in found] == ["a.jpg"]
    assert sorted(p.name for p in left_out) == ["b.HEIC", "c.dng"]  # said, not skipped unsaid


def test_find_images_relative_gives_each_photo_its_place_under_the_argument(tmp_path):
    (tmp_path / "photos" / "a").mkdir(parents=True)
    for name in ("photos/a/cat.jpg", "photos/dog.png", "single.jpg"):
        (tmp_path / name).write_bytes(b"")
    found = find_images_relative([tmp_path / "photos", tmp_path / "single.jpg"])
    assert [(path.relative_to(tmp_path).as_posix(), place.as_posix()) for path, place in found] == [
        ("photos/a/cat.jpg", "a/cat.jpg"),
        ("photos/dog.png", "dog.png"),
        ("single.jpg", "single.jpg"),
    ]
