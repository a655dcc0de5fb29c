"""The canvas's pure geometry: hit-testing, move, resize, drawing a box, and the view."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.annotate.canvas_geometry import (
    MIN_SIZE, Box, Handle, Hit, ImageSize, Point, View, box_from_corners, clamp_box, fit,
    handle_points, hit_test, move, pan, resize, zoom_about,
)

IMAGE = ImageSize(640, 480)


def test_a_handle_of_the_selected_box_is_grabbed_within_the_screen_tolerance() -> None:
    boxes = [Box("scratch", 100, 100, 200, 100)]
    # 4 screen pixels off the corner at zoom 1 is 4 image pixels: on the handle.
    assert hit_test(boxes, Point(104, 96), zoom=1.0, selected=0) == Hit(0, Handle.TOP_LEFT)
    # At zoom 4 the same 6-pixel tolerance is 1.5 image pixels: 4 away is the inside.
    assert hit_test(boxes, Point(104, 104), zoom=4.0, selected=0) == Hit(0, None)
    assert hit_test(boxes, Point(96, 96), zoom=4.0, selected=0) == Hit()
    # Every handle, each where handle_points puts it.
    for handle, at in handle_points(boxes[0]).items():
        assert hit_test(boxes, at, zoom=1.0, selected=0) == Hit(0, handle)
    # An unselected box's handle selects the box; it does not resize it.
    assert hit_test(boxes, Point(100, 100), zoom=1.0, selected=None) == Hit(0, None)


def test_the_smallest_box_under_the_pointer_wins_so_nested_boxes_can_be_picked() -> None:
    boxes = [Box("dent", 0, 0, 400, 400), Box("scratch", 50, 50, 20, 20)]
    assert hit_test(boxes, Point(60, 60), zoom=1.0) == Hit(1)
    assert hit_test(boxes, Point(200, 200), zoom=1.0) == Hit(0)
    assert hit_test(boxes, Point(500, 500), zoom=1.0).empty


def test_move_stops_at_the_image_edge_and_keeps_the_size() -> None:
    box = Box("scratch", 10, 20, 100, 50, prelabel=True)
    moved = move(box, 30, -5, IMAGE)
    assert (moved.x, moved.y, moved.width, moved.height) == (40, 15, 100, 50)
    assert not moved.prelabel  # a moved model box is a person's box now
    far = move(box, 10_000, 10_000, IMAGE)
    assert (far.x, far.y, far.right, far.bottom) == (540, 430, 640, 480)
    back = move(box, -10_000, -10_000, IMAGE)
    assert (back.x, back.y) == (0, 0)


def test_resize_follows_the_handle_flips_past_the_opposite_edge_and_keeps_a_minimum() -> None:
    box = Box("scratch", 100, 100, 100, 100)
    grown = resize(box, Handle.BOTTOM_RIGHT, Point(250, 260), IMAGE)
    assert (grown.x, grown.y, grown.right, grown.bottom) == (100, 100, 250, 260)
    # Only the edge the handle holds moves.
    wider = resize(box, Handle.LEFT, Point(40, 999), IMAGE)
    assert (wider.x, wider.y, wider.right, wider.bottom) == (40, 100, 200, 200)
    # Dragging the left edge past the right one flips the box: no negative width.
    flipped = resize(box, Handle.LEFT, Point(260, 150), IMAGE)
    assert (flipped.x, flipped.right) == (200, 260)
    # Almost onto the opposite edge: the minimum size, grown on the dragged side.
    thin = resize(box, Handle.TOP, Point(150, 199.5), IMAGE)
    assert (thin.y, thin.height) == (200 - MIN_SIZE, MIN_SIZE)
    # Beyond the image: stopped at its edge.
    out = resize(box, Handle.TOP_RIGHT, Point(9_999, -50), IMAGE)
    assert (out.x, out.y, out.right, out.bottom) == (100, 0, 640, 200)


def test_a_drag_draws_a_box_in_either_direction_and_a_click_draws_none() -> None:
    drawn = box_from_corners("dent", Point(300, 200), Point(100, 50), IMAGE)
    assert drawn == Box("dent", 100, 50, 200, 150)
    assert box_from_corners("dent", Point(10, 10), Point(11, 40), IMAGE) is None
    cut = box_from_corners("dent", Point(-20, -20), Point(50, 9_000), IMAGE)
    assert cut == Box("dent", 0, 0, 50, 480)


def test_a_model_box_spilling_over_the_edge_is_cut_to_the_image() -> None:
    assert clamp_box(Box("a", -10, 470, 30, 30), IMAGE) == Box("a", 0, 470, 20, 10)
    assert clamp_box(Box("a", 700, 10, 5, 5), IMAGE) == Box("a", 640 - MIN_SIZE, 10, MIN_SIZE, 5)


def test_zoom_keeps_the_point_under_the_pointer_and_pan_and_fit_place_the_image() -> None:
    view = View(1.0, 10, 20)
    anchor = Point(300, 200)
    under = view.to_image(anchor)
    zoomed = zoom_about(view, 2.5, anchor)
    assert zoomed.zoom == 2.5
    after = zoomed.to_image(anchor)
    assert math.isclose(after.x, under.x) and math.isclose(after.y, under.y)
    assert zoom_about(view, 1e9, anchor).zoom == 40.0  # bounded
    moved = pan(zoomed, 15, -5)
    assert (moved.offset_x - zoomed.offset_x, moved.offset_y - zoomed.offset_y) == (15, -5)
    assert moved.to_image(moved.to_screen(Point(7, 9))) == Point(7, 9)
    fitted = fit(ImageSize(200, 100), ImageSize(416, 316), margin=8)
    assert fitted.zoom == 2.0
    assert fitted.to_screen(Point(0, 0)) == Point(8, 58)
    assert fitted.to_screen(Point(200, 100)) == Point(408, 258)


coordinates = st.floats(-2_000, 2_000, allow_nan=False)
sizes = st.floats(1, 1_000, allow_nan=False)


@st.composite
def image_and_box(draw: st.DrawFn) -> tuple[ImageSize, Box]:
    image = ImageSize(draw(sizes), draw(sizes))
    x = draw(st.floats(0, image.width, allow_nan=False))
    y = draw(st.floats(0, image.height, allow_nan=False))
    width = draw(st.floats(0, image.width - x, allow_nan=False))
    height = draw(st.floats(0, image.height - y, allow_nan=False))
    return image, clamp_box(Box("c", x, y, width, height), image)


def _inside(box: Box, image: ImageSize) -> bool:
    eps = 1e-6 * max(image.width, image.height, 1.0)
    return (-eps <= box.x and box.right <= image.width + eps and -eps <= box.y
            and box.bottom <= image.height + eps and box.width >= 0 and box.height >= 0)


def _min_kept(box: Box, image: ImageSize) -> bool:
    eps = 1e-6 * max(image.width, image.height, 1.0)
    return (box.width >= min(MIN_SIZE, image.width) - eps
            and box.height >= min(MIN_SIZE, image.height) - eps)


@settings(max_examples=300, deadline=None)
@given(image_and_box(), coordinates, coordinates)
def test_any_move_keeps_the_box_inside_the_image(case: tuple[ImageSize, Box], dx: float,
                                                 dy: float) -> None:
    image, box = case
    moved = move(box, dx, dy, image)
    assert _inside(moved, image)
    assert math.isclose(moved.width, box.width, abs_tol=1e-6)
    assert math.isclose(moved.height, box.height, abs_tol=1e-6)


@settings(max_examples=300, deadline=None)
@given(image_and_box(), st.sampled_from(list(Handle)), coordinates, coordinates)
def test_any_resize_keeps_the_box_inside_the_image_and_not_too_small(
        case: tuple[ImageSize, Box], handle: Handle, x: float, y: float) -> None:
    image, box = case
    resized = resize(box, handle, Point(x, y), image)
    assert _inside(resized, image)
    assert _min_kept(resized, image)


@settings(max_examples=200, deadline=None)
@given(st.builds(ImageSize, sizes, sizes), coordinates, coordinates, coordinates, coordinates)
def test_any_drawn_box_is_inside_the_image(image: ImageSize, x0: float, y0: float, x1: float,
                                           y1: float) -> None:
    drawn = box_from_corners("c", Point(x0, y0), Point(x1, y1), image)
    if drawn is not None:
        assert _inside(drawn, image) and _min_kept(drawn, image)


@pytest.mark.parametrize("factor", [0.5, 1.25, 3.0])
def test_screen_and_image_coordinates_round_trip(factor: float) -> None:
    view = zoom_about(View(1.3, -40, 25), factor, Point(123, 45))
    for point in (Point(0, 0), Point(639.5, 0.25), Point(17, 400)):
        back = view.to_image(view.to_screen(point))
        assert math.isclose(back.x, point.x, abs_tol=1e-9)
        assert math.isclose(back.y, point.y, abs_tol=1e-9)
