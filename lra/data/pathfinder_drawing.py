"""Antialiased paddle and marker stamps, their lookup tables, and the padded canvas Pathfinder draws on."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SUBPIXELS = 8  # coverage is averaged over SUBPIXELS x SUBPIXELS points per pixel
OVERLAP_LIMIT = 1.8  # two exclusion zones summing to this on one pixel collide (the original's test)
OCCUPIED_ABOVE = 0.3  # a pixel whose exclusion value exceeds this cannot receive a new contour
SEED_DEGREES = np.arange(-180, 180)  # seed paddles take whole-degree orientations, as in the original

Point = tuple[int, int]


@dataclass(frozen=True)
class Stamp:
    """A sparse picture placed relative to an anchor pixel: flat canvas offsets and their values."""

    offsets: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class PaddleGeometry:
    """Everything that fixes paddles, markers and how sharply contours turn on one image size."""

    resolution: int
    length: int
    thickness: float
    margin: int
    marker_radius: float
    continuity: (
        float  # turns are scaled by this before the cos^2 preference; 90 degrees / continuity is the limit
    )


@dataclass(frozen=True)
class SeedPaddle:
    """The first paddle of a contour, drawn from its tail at one whole-degree orientation."""

    angle: float
    paint: Stamp
    exclusion: Stamp
    footprint_rows: np.ndarray  # cells that must be free for the tail to be placed
    footprint_cols: np.ndarray
    head: Point  # offsets from the tail, rounded up as the original does
    pivot: Point  # just behind the tail; must lie in the image
    centre: Point  # just past the head: the centre of the circle the next paddle's head is drawn on
    turn_weights: np.ndarray  # (K,) preference for each continuing candidate


@dataclass(frozen=True)
class Candidates:
    """Every paddle that can continue a contour from a circle centre, one entry per reachable head pixel."""

    angles: np.ndarray  # (K,) direction from the centre to each head
    head_rows: np.ndarray  # (K,) offsets from the centre
    head_cols: np.ndarray
    neighbourhoods: np.ndarray  # (K, D) flat offsets of the margin disk around each head
    paints: tuple[Stamp, ...]
    exclusions: tuple[Stamp, ...]
    next_centres: np.ndarray  # (K, 2) offset of the circle centre the following paddle is drawn on
    turn_weights: np.ndarray  # (K, K) row k: preference for each candidate after candidate k


@dataclass(frozen=True, eq=False)  # compared (and cached) by identity: one book per geometry
class PaddleBook:
    """All stamps for one geometry, with flat offsets laid out for a canvas of `width` columns."""

    geometry: PaddleGeometry
    pad: int
    width: int
    seeds: tuple[SeedPaddle, ...]
    candidates: Candidates
    marker: Stamp


def _sample_grid(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Subpixel (row, col) sample points of a (2r+1)^2 window whose centre pixel is the origin."""
    sub = (np.arange(SUBPIXELS) + 0.5) / SUBPIXELS - 0.5
    axis = (np.arange(-radius, radius + 1)[:, None] + sub[None, :]).ravel()
    return np.meshgrid(axis, axis, indexing="ij")


def _coverage(inside: np.ndarray, radius: int) -> np.ndarray:
    cells = 2 * radius + 1
    return inside.reshape(cells, SUBPIXELS, cells, SUBPIXELS).mean(axis=(1, 3))


def segment_windows(
    start: tuple[float, float], angle: float, length: float, thickness: float, margin: float, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of a flat-ended bar (the paddle) and of its rounded exclusion zone `margin` wider."""
    rows, cols = _sample_grid(radius)
    dy, dx = rows - start[0], cols - start[1]
    along = dy * math.sin(angle) + dx * math.cos(angle)
    across = dx * math.sin(angle) - dy * math.cos(angle)
    bar = (along >= 0) & (along <= length) & (np.abs(across) <= thickness / 2)
    beyond = along - np.clip(along, 0, length)
    zone = beyond**2 + across**2 <= (thickness / 2 + margin) ** 2
    return _coverage(bar, radius), _coverage(zone, radius)


def disk_window(disk_radius: float, radius: int) -> np.ndarray:
    rows, cols = _sample_grid(radius)
    return _coverage(rows**2 + cols**2 <= disk_radius**2, radius)


def to_stamp(window: np.ndarray, width: int) -> Stamp:
    centre = window.shape[0] // 2
    rows, cols = np.nonzero(window > 0)
    return Stamp((rows - centre) * width + (cols - centre), window[rows, cols])


def turn_weights(previous: np.ndarray, angles: np.ndarray, continuity: float) -> np.ndarray:
    """cos^2 of the (scaled, capped at 90 degrees) turn from each previous angle to each candidate."""
    turn = np.abs(angles[None, :] - np.asarray(previous, dtype=np.float64).reshape(-1, 1))
    turn = np.minimum(turn, 2 * np.pi - turn)
    return np.maximum(np.cos(np.minimum(turn * continuity, np.pi / 2)), 0.0) ** 2


def _round_up(value: float) -> int:
    # Rounded first so that sin(pi) = 1e-16 does not push a whole coordinate up by one.
    return math.ceil(round(value, 9))


def _seed_paddle(
    geometry: PaddleGeometry, degrees: int, width: int, candidate_angles: np.ndarray
) -> SeedPaddle:
    length, margin = geometry.length, geometry.margin
    angle = math.radians(degrees)
    radius = math.ceil(length + geometry.thickness / 2 + margin + 1)
    paint, zone = segment_windows((0.0, 0.0), angle, length, geometry.thickness, margin, radius)
    rows, cols = np.nonzero(zone >= 0.5)
    sin, cos = math.sin(angle), math.cos(angle)
    head = (_round_up(length * sin), _round_up(length * cos))
    pivot = (_round_up(head[0] - (length + margin) * sin), _round_up(head[1] - (length + margin) * cos))
    centre = (
        pivot[0] + _round_up((length + 2 * margin) * sin),
        pivot[1] + _round_up((length + 2 * margin) * cos),
    )
    return SeedPaddle(
        angle,
        to_stamp(paint, width),
        to_stamp(zone, width),
        rows - radius,
        cols - radius,
        head,
        pivot,
        centre,
        turn_weights([angle], candidate_angles, geometry.continuity)[0],
    )


def extension_radius(geometry: PaddleGeometry) -> int:
    """How far from its circle centre a continuing paddle (with its exclusion zone) can reach."""
    return math.ceil(geometry.length + 2 * geometry.margin + geometry.thickness / 2 + 2)


def _candidates(geometry: PaddleGeometry, width: int) -> Candidates:
    length, margin = geometry.length, geometry.margin
    step = length + margin
    # One sample per pixel of arc on the circle of radius `step`, floored to pixels, as the original.
    degrees = np.arange(0, 360, 360 / (2 * step * np.pi))
    offsets = np.stack(
        [
            np.floor(np.round(step * np.sin(np.radians(degrees)), 9)),
            np.floor(np.round(step * np.cos(np.radians(degrees)), 9)),
        ],
        axis=1,
    )
    heads = np.unique(offsets.astype(np.int64), axis=0)
    angles = np.arctan2(heads[:, 0], heads[:, 1])
    span = np.arange(-margin, margin + 1)
    disk_rows, disk_cols = np.meshgrid(span, span, indexing="ij")
    in_disk = disk_rows**2 + disk_cols**2 <= margin**2
    disk = disk_rows[in_disk] * width + disk_cols[in_disk]
    radius = extension_radius(geometry)
    paints, exclusions, next_centres = [], [], []
    for (row, col), angle in zip(heads, angles):
        sin, cos = math.sin(angle), math.cos(angle)
        start = (row - length * sin, col - length * cos)
        paint, zone = segment_windows(start, angle, length, geometry.thickness, margin, radius)
        paints.append(to_stamp(paint, width))
        exclusions.append(to_stamp(zone, width))
        next_centres.append((_round_up((length + 2 * margin) * sin), _round_up((length + 2 * margin) * cos)))
    return Candidates(
        angles,
        heads[:, 0],
        heads[:, 1],
        (heads[:, 0] * width + heads[:, 1])[:, None] + disk,
        tuple(paints),
        tuple(exclusions),
        np.array(next_centres),
        turn_weights(angles, angles, geometry.continuity),
    )


@functools.lru_cache(maxsize=8)
def paddle_book(geometry: PaddleGeometry) -> PaddleBook:
    """Build (once per process and geometry) every stamp an image of this geometry can use."""
    marker_radius = math.ceil(geometry.marker_radius) + 1
    pad = max(extension_radius(geometry) + geometry.margin + 3, marker_radius + 1)
    width = geometry.resolution + 2 * pad
    candidates = _candidates(geometry, width)
    seeds = tuple(_seed_paddle(geometry, int(degrees), width, candidates.angles) for degrees in SEED_DEGREES)
    marker = to_stamp(disk_window(geometry.marker_radius, marker_radius), width)
    return PaddleBook(geometry, pad, width, seeds, candidates, marker)


@functools.lru_cache(maxsize=16)
def _blank_mask(book: PaddleBook, border: int) -> np.ndarray:
    mask = np.ones((book.width, book.width))
    lo, hi = book.pad + border, book.pad + book.geometry.resolution - border
    mask[lo:hi, lo:hi] = 0.0
    return mask.ravel()


class Canvas:
    """The exclusion mask contours must respect, and the strokes drawn so far, on a padded grid.

    Outside the image the mask is 1: the original reserves a `border` band inside the image edge, so
    whatever reaches past the edge collides with that band anyway. Strokes are only rasterised by
    `pixels`, since most attempts at a pair of target contours fail and are thrown away.
    """

    def __init__(self, book: PaddleBook, border: int) -> None:
        self.size, self.pad, self.width = book.geometry.resolution, book.pad, book.width
        self.mask = _blank_mask(book, border).copy()
        self.strokes: list[tuple[int, Stamp, float]] = []

    def anchor(self, point: Point) -> int:
        return (point[0] + self.pad) * self.width + point[1] + self.pad

    def contains(self, point: Point) -> bool:
        return 0 <= point[0] < self.size and 0 <= point[1] < self.size

    def paint(self, anchor: int, stamp: Stamp, contrast: float) -> None:
        self.strokes.append((anchor, stamp, contrast))

    def reserve(self, anchor: int, stamp: Stamp) -> None:
        cells = anchor + stamp.offsets
        self.mask[cells] = np.maximum(self.mask.take(cells), stamp.values)

    def overlaps(self, anchor: int, stamp: Stamp, rival: np.ndarray | None = None) -> bool:
        """Whether an exclusion zone collides with the mask (or with `rival`, zones not yet reserved)."""
        cells = anchor + stamp.offsets
        taken = self.mask.take(cells)
        if rival is not None:
            np.maximum(taken, rival.take(cells), out=taken)
        taken += stamp.values
        return bool(taken.max() >= OVERLAP_LIMIT)

    def free_fraction(self) -> float:
        return float(np.count_nonzero(self.mask <= OCCUPIED_ABOVE)) / self.size**2

    def tail_positions(self, seed: SeedPaddle, band: int) -> tuple[np.ndarray, np.ndarray]:
        """Image pixels from which the seed paddle fits on free cells at least `band` from the edge."""
        blocked = self.mask.reshape(self.width, self.width) > OCCUPIED_ABOVE
        lo, hi = self.pad + band, self.pad + self.size - band
        blocked[:lo] = blocked[hi:] = True
        blocked[:, :lo] = blocked[:, hi:] = True
        free = np.ones((self.size, self.size), dtype=bool)
        for row, col in zip(seed.footprint_rows, seed.footprint_cols):
            free &= ~blocked[
                self.pad + row : self.pad + row + self.size, self.pad + col : self.pad + col + self.size
            ]
        return np.nonzero(free)

    def snapshot(self) -> tuple[np.ndarray, int]:
        return self.mask.copy(), len(self.strokes)

    def restore(self, state: tuple[np.ndarray, int]) -> None:
        self.mask = state[0].copy()
        del self.strokes[state[1] :]

    def pixels(self) -> np.ndarray:
        """Rasterise the strokes; where they overlap the brighter one wins, as in the original."""
        image = np.zeros(self.width * self.width)
        for anchor, stamp, contrast in self.strokes:
            cells = anchor + stamp.offsets
            image[cells] = np.maximum(image.take(cells), stamp.values * contrast)
        full = image.reshape(self.width, self.width)
        return full[self.pad : self.pad + self.size, self.pad : self.pad + self.size].copy()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Stretch to 0-255 by the brightest pixel, as the original's image writer did."""
    peak = float(image.max())
    if peak <= 0.0:
        return np.zeros(image.shape, dtype=np.uint8)
    return np.floor(image * (255.0 / peak) + 0.5).astype(np.uint8)
