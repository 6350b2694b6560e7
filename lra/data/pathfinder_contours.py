"""Pathfinder stimuli one image at a time: a numpy re-implementation of the "snakes2" contour generator."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lra.data.layout import CONTOUR_FOLDERS
from lra.data.pathfinder_drawing import (
    Canvas,
    PaddleBook,
    PaddleGeometry,
    Point,
    Stamp,
    paddle_book,
    to_uint8,
)

MAX_PADDLE_RETRIES = 2  # extra draws of one paddle before its contour is abandoned
MAX_DISTRACTOR_RETRIES = 4  # extra attempts at one distractor contour before it is skipped
MAX_TARGET_ATTEMPTS = 10_000  # the original retried forever; this only turns a hang into an error
DISTRACTOR_MIN_FREE = 0.01  # distractors stop once under 1% of the image is free


@dataclass(frozen=True)
class PathfinderSettings:
    """The original generator's arguments for one resolution and difficulty (see `pathfinder_settings`)."""

    resolution: int
    contour_length: int
    paddle_length: int
    paddle_thickness: float
    margins: tuple[int, ...]  # one is drawn per image
    border: int
    marker_radius: float
    seed_distance: int
    continuity: float
    distractor_length: int
    distractor_count: int
    snake_contrast: float
    paddle_contrast: float


# The LRA builders' documented arguments; distractor_budget / distractor_length gives the count.
_RESOLUTIONS = {
    32: dict(
        paddle_length=2,
        paddle_thickness=0.5,
        margins=(1,),
        border=1,
        marker_radius=1.5,
        seed_distance=7,
        continuity=1.0,
        distractor_budget=20,
        snake_contrast=2.0,
        paddle_contrast=0.75,
    ),
    128: dict(
        paddle_length=5,
        paddle_thickness=1.5,
        margins=(2, 3),
        border=1,
        marker_radius=3.0,
        seed_distance=20,
        continuity=1.8,
        distractor_budget=35,
        snake_contrast=0.9,
        paddle_contrast=1.0,
    ),
}


def pathfinder_settings(resolution: int, contour_length: int) -> PathfinderSettings:
    """The LRA arguments for 32x32 (Pathfinder) or 128x128 (Path-X) at contour length 6, 9 or 14."""
    if resolution not in _RESOLUTIONS:
        raise ValueError(f"resolution must be one of {sorted(_RESOLUTIONS)}, got {resolution!r}")
    if contour_length not in CONTOUR_FOLDERS:
        raise ValueError(f"contour_length must be one of {sorted(CONTOUR_FOLDERS)}, got {contour_length!r}")
    base = dict(_RESOLUTIONS[resolution])
    distractor_length = contour_length // 3
    distractor_count = base.pop("distractor_budget") // distractor_length
    return PathfinderSettings(
        resolution=resolution,
        contour_length=contour_length,
        distractor_length=distractor_length,
        distractor_count=distractor_count,
        **base,
    )


@dataclass(frozen=True)
class PathfinderSample:
    """One rendered image with the bookkeeping that decides its label."""

    image: np.ndarray  # (resolution, resolution) uint8
    label: int
    markers: tuple[Point, Point]  # (row, col) of the two marker centres
    marker_contours: tuple[int, int]  # which of the two target contours (0 or 1) each marker ends
    contour_ends: tuple[tuple[Point, Point], tuple[Point, Point]]  # (tail, head) of each target contour
    margin: int


@dataclass
class _Contour:
    """A contour being grown paddle by paddle."""

    tail: Point
    head: Point
    centre: Point  # the next paddle's head is drawn on a circle around this point
    turns: np.ndarray  # preference for each continuing candidate given the current direction
    pending: tuple[int, Stamp]  # the newest paddle's exclusion zone, reserved once its successor exists
    layer: np.ndarray | None = (
        None  # the pending zone as a full image, kept where another contour must avoid it
    )


Tails = Callable[[int], tuple[np.ndarray, np.ndarray]]  # seed index -> (rows, cols) a tail may take


@functools.lru_cache(maxsize=None)
def _tails_on_blank_canvas(
    geometry: PaddleGeometry, border: int, band: int, seed_index: int
) -> tuple[np.ndarray, np.ndarray]:
    # The first target seed always lands on a blank canvas, so its free tails depend on the seed alone.
    book = paddle_book(geometry)
    return Canvas(book, border).tail_positions(book.seeds[seed_index], band)


def _place_seed(
    canvas: Canvas, book: PaddleBook, rng: np.random.Generator, contrast: float, tails: Tails
) -> _Contour | None:
    """Start a contour: a whole-degree orientation, then one of the tails it allows (`seed_snake`)."""
    for _ in range(MAX_PADDLE_RETRIES + 1):
        index = int(rng.integers(len(book.seeds)))
        rows, cols = tails(index)
        if rows.size == 0:
            return None
        pick = int(rng.integers(rows.size))
        seed, tail = book.seeds[index], (int(rows[pick]), int(cols[pick]))
        head = (tail[0] + seed.head[0], tail[1] + seed.head[1])
        if canvas.contains(head) and canvas.contains((tail[0] + seed.pivot[0], tail[1] + seed.pivot[1])):
            anchor = canvas.anchor(tail)
            canvas.paint(anchor, seed.paint, contrast)
            centre = (tail[0] + seed.centre[0], tail[1] + seed.centre[1])
            return _Contour(tail, head, centre, seed.turn_weights, (anchor, seed.exclusion))
    return None


def _partner_tail(rng: np.random.Generator, first_tail: Point, distance: int) -> Tails:
    """The second target contour starts `distance` pixels from the first, in a random direction."""

    def tail(_: int) -> tuple[np.ndarray, np.ndarray]:
        direction = math.radians(rng.integers(360))
        return (
            np.rint([first_tail[0] + distance * math.sin(direction)]).astype(int),
            np.rint([first_tail[1] + distance * math.cos(direction)]).astype(int),
        )

    return tail


def _extend(
    canvas: Canvas,
    book: PaddleBook,
    contour: _Contour,
    rng: np.random.Generator,
    contrast: float,
    rival: np.ndarray | None = None,
) -> bool:
    """Add one paddle past the contour's head, preferring small turns and free space (`get_coords_cmf`)."""
    found = book.candidates
    row, col = contour.centre
    reach, size = book.geometry.margin + 2, canvas.size
    if not (-reach <= row < size + reach and -reach <= col < size + reach):
        return False
    anchor = canvas.anchor(contour.centre)
    # Heads off the image or within a margin of anything reserved get (near) zero weight.
    crowding = canvas.mask.take(anchor + found.neighbourhoods).max(axis=1)
    cumulative = (contour.turns * (1.0 - crowding)).cumsum()
    total = cumulative[-1]
    if total < 1e-4:
        return False
    last = len(cumulative) - 1
    for _ in range(MAX_PADDLE_RETRIES + 1):
        pick = min(int(cumulative.searchsorted(rng.random() * total, side="right")), last)
        zone = found.exclusions[pick]
        if canvas.overlaps(anchor, zone, rival):
            continue
        canvas.paint(anchor, found.paints[pick], contrast)
        canvas.reserve(*contour.pending)
        if contour.layer is not None:
            contour.layer[contour.pending[0] + contour.pending[1].offsets] = 0.0
            contour.layer[anchor + zone.offsets] = zone.values
        contour.pending = (anchor, zone)
        contour.head = (row + int(found.head_rows[pick]), col + int(found.head_cols[pick]))
        contour.centre = (row + int(found.next_centres[pick, 0]), col + int(found.next_centres[pick, 1]))
        contour.turns = found.turn_weights[pick]
        return True
    return False


def _target_pair(
    canvas: Canvas, book: PaddleBook, rng: np.random.Generator, settings: PathfinderSettings
) -> tuple[_Contour, _Contour] | None:
    """Grow the two marked contours in lockstep from seeds near the centre (`two_snakes`)."""
    contrast = settings.snake_contrast * settings.paddle_contrast
    blank_tails = functools.partial(
        _tails_on_blank_canvas, book.geometry, settings.border, 2 * settings.seed_distance
    )
    first = _place_seed(canvas, book, rng, contrast, blank_tails)
    if first is None:
        return None
    second = _place_seed(canvas, book, rng, contrast, _partner_tail(rng, first.tail, settings.seed_distance))
    if second is None:
        return None
    pair = (first, second)
    # Unlike the original, each also keeps clear of the other's newest (not yet reserved) paddle.
    for contour in pair:
        contour.layer = np.zeros_like(canvas.mask)
        contour.layer[contour.pending[0] + contour.pending[1].offsets] = contour.pending[1].values
    for _ in range(settings.contour_length - 1):
        for index, contour in enumerate(pair):
            if not _extend(canvas, book, contour, rng, contrast, pair[1 - index].layer):
                return None
    for contour in pair:
        canvas.reserve(*contour.pending)
    return pair


def _add_distractor(
    canvas: Canvas, book: PaddleBook, rng: np.random.Generator, settings: PathfinderSettings
) -> bool:
    """Grow one unmarked contour anywhere free, undoing it if it cannot reach full length (`make_snake`)."""
    if canvas.free_fraction() < DISTRACTOR_MIN_FREE:
        return False
    state = canvas.snapshot()
    contour = _place_seed(
        canvas, book, rng, settings.snake_contrast, lambda index: canvas.tail_positions(book.seeds[index], 1)
    )
    grown = contour is not None and all(
        _extend(canvas, book, contour, rng, settings.snake_contrast)
        for _ in range(settings.distractor_length - 1)
    )
    if not grown:
        canvas.restore(state)
        return False
    canvas.reserve(*contour.pending)
    return True


def render_sample(settings: PathfinderSettings, rng: np.random.Generator, label: int) -> PathfinderSample:
    """Draw one image: label 1 puts both markers on the ends of one contour, label 0 on two contours."""
    margin = settings.margins[int(rng.integers(len(settings.margins)))]
    book = paddle_book(
        PaddleGeometry(
            settings.resolution,
            settings.paddle_length,
            settings.paddle_thickness,
            margin,
            settings.marker_radius,
            settings.continuity,
        )
    )
    for _ in range(MAX_TARGET_ATTEMPTS):
        canvas = Canvas(book, settings.border)
        pair = _target_pair(canvas, book, rng, settings)
        if pair is not None:
            break
    else:
        raise RuntimeError(
            f"could not place two target contours in {MAX_TARGET_ATTEMPTS} attempts with {settings}"
        )
    for _ in range(settings.distractor_count):
        for _attempt in range(MAX_DISTRACTOR_RETRIES + 1):
            if _add_distractor(canvas, book, rng, settings):
                break
    origin = int(rng.integers(2))
    terminal = origin if label == 1 else 1 - origin
    markers = (pair[origin].tail, pair[terminal].head)
    for marker in markers:
        canvas.paint(canvas.anchor(marker), book.marker, 1.0)
    ends = tuple((contour.tail, contour.head) for contour in pair)
    return PathfinderSample(to_uint8(canvas.pixels()), label, markers, (origin, terminal), ends, margin)


def image_label(seed: int, index: int) -> int:
    """Labels come in pairs (2k, 2k+1) holding one positive each, so any even count is exactly balanced."""
    flip = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index // 2))).integers(2)
    return int((index + flip) % 2)


def render_image(settings: PathfinderSettings, seed: int, index: int) -> PathfinderSample:
    """Image `index` of the data set drawn with `seed`, whichever process renders it."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index)))
    return render_sample(settings, rng, image_label(seed, index))
