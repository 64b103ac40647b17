"""Locations, regions and great-circle distances in kilometres (pure numpy)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError

EARTH_RADIUS_KM: Final = 6371.009  # the mean Earth radius (IUGG), as geopy's great_circle uses


@dataclass(frozen=True)
class Location:
    """A point on Earth in degrees."""

    lat: float
    lon: float

    def payload(self) -> dict[str, float]:
        """The Qdrant geo payload of this point."""
        return {"lat": self.lat, "lon": self.lon}

    @classmethod
    def parse(cls, text: str, what: str = "location") -> Location:
        """`LAT,LON` in degrees; ConfigError naming the problem otherwise."""
        try:
            lat, lon = (float(v) for v in text.split(","))
        except ValueError:
            raise ConfigError(f"{what} {text!r} is not LAT,LON") from None
        return cls.of(lat, lon, f"{what} {text!r}")

    @classmethod
    def of(cls, lat: float, lon: float, what: str = "location") -> Location:
        """A point from its degrees; ConfigError when they are off the Earth."""
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ConfigError(f"{what}: need -90 <= LAT <= 90 and -180 <= LON <= 180")
        return cls(lat, lon)


@dataclass(frozen=True)
class Region:
    """A latitude/longitude box."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    @classmethod
    def parse(cls, text: str) -> Region:
        """`LAT_MIN,LAT_MAX,LON_MIN,LON_MAX`; ConfigError naming the problem otherwise."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ConfigError(f"region {text!r} is not LAT_MIN,LAT_MAX,LON_MIN,LON_MAX")
        region = cls(*values)
        if not (-90 <= region.lat_min < region.lat_max <= 90):
            raise ConfigError(f"region {text!r}: need -90 <= LAT_MIN < LAT_MAX <= 90")
        if not (-180 <= region.lon_min < region.lon_max <= 180):
            raise ConfigError(f"region {text!r}: need -180 <= LON_MIN < LON_MAX <= 180")
        return region

    @classmethod
    def around(cls, points: list[Location], margin: float = 0.1) -> Region:
        """The bounding box of points, widened by a margin (fraction of its size, ≥ 0.01°)."""
        lats, lons = [p.lat for p in points], [p.lon for p in points]
        dlat = max((max(lats) - min(lats)) * margin, 0.01)
        dlon = max((max(lons) - min(lons)) * margin, 0.01)
        return cls(
            max(-90.0, min(lats) - dlat),
            min(90.0, max(lats) + dlat),
            max(-180.0, min(lons) - dlon),
            min(180.0, max(lons) + dlon),
        )

    def text(self) -> str:
        """The region in the flag's format."""
        return f"{self.lat_min},{self.lat_max},{self.lon_min},{self.lon_max}"


# Greater Paris, about 33 km × 30 km: a metropolitan area of realistic size.
DEFAULT_REGION = Region(48.72, 49.0, 2.18, 2.58)


def distances_km(
    origin: Location, lats: NDArray[np.float64], lons: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Great-circle distances from one point to many (NaN stays NaN): the haversine formula."""
    p1, p2 = np.radians(origin.lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - origin.lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    km: NDArray[np.float64] = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return km


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance between two points, in kilometres."""
    return float(distances_km(a, np.array([b.lat]), np.array([b.lon]))[0])


def coordinates(points: Iterable[object]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Latitudes and longitudes of geo payloads (`{"lat": .., "lon": ..}`); NaN where absent."""
    pairs = [(p["lat"], p["lon"]) if isinstance(p, dict) else (np.nan, np.nan) for p in points]
    table = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    return table[:, 0], table[:, 1]
