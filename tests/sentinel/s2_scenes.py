"""Writers of tiny but real Sentinel-2 L2A scenes: one COG per band at its native 10/20/60 m resolution and the
STAC item (Earth Search or Planetary Computer asset naming) that points at them.

Pixel values are a known function of the band and of the pixel's absolute UTM position, so any chip's expected
values can be computed without the scene, and two scenes of the same "surface" hold the same reflectance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, mapping

from sentinel.bands import BAND_INDEX, BAND_NAMES, BANDS, SCL_ASSET, asset_key
from sentinel.footprint import ChipLocation

SCL_RES = 20


def surface(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reflectance x 10000 of band `name` at UTM pixel centres (x, y), on the band's own pixel grid."""
    res = next(b.resolution_m for b in BANDS if b.name == name)
    xi = np.floor(x / res).astype(np.int64)
    yi = np.floor(y / res).astype(np.int64)
    return (200 + 100 * BAND_INDEX[name] + (xi * 7 + yi * 13) % 50).astype(np.uint16)


def centres(x0: float, y0: float, res: float, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    xs = x0 + (np.arange(w) + 0.5) * res
    ys = y0 - (np.arange(h) + 0.5) * res
    return np.meshgrid(xs, ys)


def expected_chip(loc: ChipLocation) -> np.ndarray:
    """The (12, H, W) surface values of a chip, each band replicated from its native pixels (nearest)."""
    x, y = centres(loc.x0, loc.y0, loc.res_m, loc.size_px, loc.size_px)
    return np.stack([surface(n, x, y) for n in BAND_NAMES])


def write_cog(path: Path, data: np.ndarray, epsg: int, transform: Affine, blocksize: int = 128) -> Path:
    h, w = data.shape
    with rasterio.open(path, "w", driver="COG", width=w, height=h, count=1, dtype=data.dtype.name,
                       crs=f"EPSG:{epsg}", transform=transform, nodata=0, compress="deflate",
                       blocksize=blocksize, overviews="NONE") as dst:
        dst.write(data, 1)
    return path


def truncate(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def write_scene(root: Path, item_id: str, *, epsg: int = 32632, x0: float = 500040.0, y0: float = 5300040.0,
                size_m: float = 6000.0, datetime: str = "2024-05-10T10:20:30Z", provider: str = "earth-search",
                collection: str = "sentinel-2-l2a", baseline: str | None = "05.10",
                boa_offset_applied: bool | None = None, cloud_cover: float | None = 5.0,
                nodata_pct: float | None = 0.0, dn_offset: int = 0,
                scl: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                drop_assets: tuple[str, ...] = (), blocksize: int = 128) -> dict[str, Any]:
    """Write the 12 band COGs and the SCL COG of a square scene; return its STAC item as a dict.

    `dn_offset` is added to every valid pixel (1000 for raw baseline >= 04.00 data); `scl(x, y)` gives the SCL
    class at 20 m pixel centres (default: 4, vegetation).
    """
    folder = root / item_id
    folder.mkdir(parents=True, exist_ok=True)
    assets: dict[str, Any] = {}
    for b in BANDS:
        n = int(round(size_m / b.resolution_m))
        x, y = centres(x0, y0, b.resolution_m, n, n)
        data = surface(b.name, x, y) + np.uint16(dn_offset)
        path = write_cog(folder / f"{b.name}.tif", data, epsg, Affine(b.resolution_m, 0, x0, 0, -b.resolution_m, y0),
                         blocksize)
        assets[asset_key(b.name, provider)] = {"href": str(path), "type": "image/tiff; application=geotiff; "
                                               "profile=cloud-optimized", "roles": ["data"],
                                               "gsd": b.resolution_m}
    n = int(round(size_m / SCL_RES))
    x, y = centres(x0, y0, SCL_RES, n, n)
    classes = scl(x, y) if scl is not None else np.full(x.shape, 4)
    path = write_cog(folder / "SCL.tif", classes.astype(np.uint8), epsg, Affine(SCL_RES, 0, x0, 0, -SCL_RES, y0),
                     blocksize)
    assets[SCL_ASSET[provider]] = {"href": str(path), "type": "image/tiff", "roles": ["data"]}
    for key in drop_assets:
        assets.pop(key)
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    footprint = shapely.transform(box(x0, y0 - size_m, x0 + size_m, y0).segmentize(size_m / 8),
                                  to_ll.transform, interleaved=False)
    props: dict[str, Any] = {"datetime": datetime, "proj:epsg": epsg, "platform": "sentinel-2a"}
    if cloud_cover is not None:
        props["eo:cloud_cover"] = cloud_cover
    if nodata_pct is not None:
        props["s2:nodata_pixel_percentage"] = nodata_pct
    if baseline is not None:
        props["s2:processing_baseline"] = baseline
    if boa_offset_applied is not None:
        props["earthsearch:boa_offset_applied"] = boa_offset_applied
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "geometry": mapping(footprint), "bbox": list(footprint.bounds), "properties": props,
        "links": [], "assets": assets, "stac_extensions": [],
    }


def scl_box(minx: float, miny: float, maxx: float, maxy: float, cls: int = 9) -> Callable[..., np.ndarray]:
    """SCL: `cls` (default: cloud high probability) inside a UTM box, vegetation elsewhere."""

    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        inside = (x >= minx) & (x < maxx) & (y >= miny) & (y < maxy)
        return np.where(inside, cls, 4)

    return fn
