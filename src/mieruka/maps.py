"""Maps after the method: upsample, normalize, and put back onto the original photo -- batched tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .images import CropBox


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of maps (..., h, w) to (..., H, W), half-pixel centres as in cv2 and PIL."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    resized = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return resized.reshape(*lead, *size)


def normalize(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each map (..., H, W) by its own maximum into [0, 1]; returns (maps, is_empty).

    Division by the maximum is scale-invariant (no additive epsilon, which would flatten maps whose
    range is ~1e-3). A map with no positive value stays all zero, with no NaN, and is flagged empty.
    """
    maps = _positive(maps)
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    empty = peak.squeeze(-1).squeeze(-1) <= 0
    scaled = torch.where(peak > 0, maps / torch.where(peak > 0, peak, torch.ones_like(peak)), 0.0)
    return scaled, empty


def _positive(maps: torch.Tensor) -> torch.Tensor:
    """Maps in float with what is not a positive number (negative, NaN, infinite) set to zero."""
    return torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)


FLAT_TOLERANCE = 1e-5  # relative spread under which a map counts as the same value everywhere


def is_flat(maps: torch.Tensor) -> torch.Tensor:
    """(...) bool for maps (..., h, w): a positive value, the same everywhere (to :data:`FLAT_TOLERANCE`
    of its peak). Normalized, such a map is 1 at every pixel: it shows no place, and is flagged."""
    maps = _positive(maps)
    peak, low = maps.amax(dim=(-2, -1)), maps.amin(dim=(-2, -1))
    return (peak > 0) & (peak - low <= FLAT_TOLERANCE * peak)


def no_place(empty: bool, flat: bool) -> str:
    """What a map that shows no place is called where it is drawn: 'empty map', 'flat map', else ''."""
    return "empty map" if empty else "flat map" if flat else ""


def to_photo(
    maps: torch.Tensor, box: CropBox, photo_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample maps (K, h, w) covering `box` onto the photo's full (width, height) pixel grid.

    Returns (maps (K, H, W), inside (H, W) bool): bilinear inside the box, zero outside it, so the part
    of the photo the model never saw stays unmarked. Separable, so it costs two gathers per map.
    """
    width, height = photo_size
    map_height, map_width = maps.shape[-2:]
    x_index, x_weight, x_inside = _axis(box.left, box.right, width, map_width, maps.device)
    y_index, y_weight, y_inside = _axis(box.top, box.bottom, height, map_height, maps.device)
    maps = maps.float()
    maps = torch.cat([maps, maps[..., -1:]], dim=-1)  # a repeated last column/row: index + 1 stays valid
    maps = torch.cat([maps, maps[..., -1:, :]], dim=-2)
    inside = y_inside[:, None] & x_inside[None, :]
    result = maps.new_zeros(*maps.shape[:-2], height, width)
    rows, columns = _span(y_inside), _span(x_inside)  # the same pixels as box_pixels() names
    if rows is None or columns is None:
        return result, inside
    # only the pixels inside the box are computed; the rest stays zero
    x_index, x_weight = x_index[columns], x_weight[columns]
    y_index, y_weight = y_index[rows], y_weight[rows]
    across = maps[..., x_index] * (1 - x_weight) + maps[..., x_index + 1] * x_weight  # (K, h, w_box)
    result[..., rows, columns] = (
        across[..., y_index, :] * (1 - y_weight)[:, None] + across[..., y_index + 1, :] * y_weight[:, None]
    )
    return result, inside


def box_pixels(box: CropBox, photo_size: tuple[int, int]) -> tuple[slice, slice] | None:
    """The (rows, columns) of photo pixels whose centres lie in `box`, or None if none do.

    These are the pixels :func:`to_photo` fills; every other pixel of the photo stays unmarked.
    """
    width, height = photo_size
    rows = _span(_axis(box.top, box.bottom, height, 1, "cpu")[2])
    columns = _span(_axis(box.left, box.right, width, 1, "cpu")[2])
    return None if rows is None or columns is None else (rows, columns)


def _span(inside: torch.Tensor) -> slice | None:
    """The slice of a 1-D inside mask (one run of True, as a box gives), or None if it is empty."""
    where = inside.nonzero()
    if len(where) == 0:
        return None
    return slice(int(where[0]), int(where[-1]) + 1)


def _axis(start: float, stop: float, pixels: int, cells: int, device: torch.device):
    """For each photo pixel along one axis: left cell index, interpolation weight, and inside-ness."""
    centres = torch.arange(pixels, device=device, dtype=torch.float64) + 0.5
    position = (centres - start) / (stop - start) * cells - 0.5  # in map cell units, cell centres at k
    inside = (centres >= start) & (centres <= stop)
    position = position.clamp(0, cells - 1)
    index = position.floor().long()
    return index, (position - index).float(), inside
