"""The procedural factory scene: deterministic, labelled truthfully, and drifting as promised."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.scene import CLASSES, SCENARIOS, Box, Sample, Scenario, Schedule, SceneGenerator

ROOT = Path(__file__).resolve().parents[2]
DEFECTS = CLASSES[1:]


@pytest.fixture(scope="module")
def gen() -> SceneGenerator:
    return SceneGenerator(seed=7, size=128, defect_rate=0.5)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)


def images(gen: SceneGenerator, scenario: Scenario | str, count: int = 24) -> list[np.ndarray]:
    return [gen.sample(i, scenario).image for i in range(count)]


# --- determinism and validation ---------------------------------------------------------


@pytest.mark.parametrize("scenario", ["none", "noise", "camera", "new_variant:0.5", "blur", "lighting"])
def test_same_seed_and_index_give_byte_identical_samples_in_any_order(scenario: str) -> None:
    first, second = SceneGenerator(seed=3), SceneGenerator(seed=3)
    forward = [first.sample(i, scenario) for i in range(12)]
    backward = [second.sample(i, scenario) for i in reversed(range(12))][::-1]
    for a, b in zip(forward, backward):
        assert a.image.tobytes() == b.image.tobytes()
        assert (a.label, a.boxes, a.index, a.part) == (b.label, b.boxes, b.index, b.part)


def test_different_seeds_and_indices_give_different_images() -> None:
    a, b = SceneGenerator(seed=0), SceneGenerator(seed=1)
    for i in range(10):
        assert a.sample(i).image.tobytes() != b.sample(i).image.tobytes()
        assert a.sample(i).image.tobytes() != a.sample(i + 1).image.tobytes()
    # Different seeds also draw different labels, not just different pixels.
    assert [a.label_of(i) for i in range(50)] != [b.label_of(i) for i in range(50)]


@pytest.mark.parametrize("size", [64, 100, 128, 256])
def test_images_are_square_bgr_uint8_of_the_requested_size(size: int) -> None:
    gen = SceneGenerator(seed=2, size=size)
    for s in gen.batch(0, 6):
        assert isinstance(s, Sample)
        assert s.image.shape == (size, size, 3)
        assert s.image.dtype == np.uint8
        assert s.label in CLASSES and s.scenario == "none" and s.part == "plate"
        assert s.class_id == CLASSES.index(s.label)


@pytest.mark.parametrize("kwargs", [
    {"size": 32}, {"size": 512}, {"size": 63}, {"size": 257}, {"size": 128.0},
    {"defect_rate": -0.1}, {"defect_rate": 1.5}, {"seed": -1}, {"scenario": "fog"},
])
def test_generator_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SceneGenerator(**kwargs)  # type: ignore[arg-type]


def test_sample_rejects_bad_index_label_and_scenario(gen: SceneGenerator) -> None:
    with pytest.raises(ValueError, match="index"):
        gen.sample(-1)
    with pytest.raises(ValueError, match="unknown class 'dent'"):
        gen.sample(0, force_label="dent")
    with pytest.raises(ValueError, match="unknown scenario 'fog'"):
        gen.sample(0, "fog")


def test_batch_is_consecutive_samples(gen: SceneGenerator) -> None:
    batch = gen.batch(5, 4, "blur:0.5")
    assert [s.index for s in batch] == [5, 6, 7, 8]
    for s in batch:
        assert s.image.tobytes() == gen.sample(s.index, Scenario("blur", 0.5)).image.tobytes()
        assert s.scenario == "blur"


# --- labels and boxes -------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_label_frequencies_follow_the_defect_rate(rate: float) -> None:
    gen = SceneGenerator(seed=11, size=64, defect_rate=rate)
    n = 2000
    samples = gen.batch(0, n)
    counts = Counter(s.label for s in samples)
    expected = {"ok": 1 - rate, **{c: rate / 4 for c in DEFECTS}}
    for label, p in expected.items():
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[label] - n * p) < 4.5 * sigma, (label, counts)
    # label_of promises the label without drawing; it must agree with the drawing.
    assert [gen.label_of(i) for i in range(n)] == [s.label for s in samples]


def test_extreme_defect_rates() -> None:
    never, always = SceneGenerator(defect_rate=0.0), SceneGenerator(defect_rate=1.0)
    assert {never.label_of(i) for i in range(500)} == {"ok"}
    assert {always.label_of(i) for i in range(500)} == set(DEFECTS)


def test_boxes_are_in_bounds_and_present_exactly_for_defects(gen: SceneGenerator) -> None:
    seen = Counter()
    for s in gen.batch(0, 200):
        seen[s.label] += 1
        if s.label == "ok":
            assert s.boxes == ()
            continue
        (box,) = s.boxes
        assert isinstance(box, Box) and box.label == s.label
        assert 0 <= box.x and 0 <= box.y and box.x + box.w <= 128 and box.y + box.h <= 128
        # Visible but not huge: a few pixels up to about a third of the image.
        assert 4 <= max(box.w, box.h) <= 50, box
    assert all(seen[c] > 0 for c in CLASSES)


def _differing_pixels(a: np.ndarray, b: np.ndarray, threshold: int = 12) -> tuple[np.ndarray, np.ndarray]:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return np.nonzero(diff > threshold)


@pytest.mark.parametrize("scenario", ["none", "camera"])
@pytest.mark.parametrize("label", DEFECTS)
def test_the_defect_is_drawn_inside_its_tight_box(gen: SceneGenerator, label: str, scenario: str) -> None:
    """Draw each scene with and without its defect: every changed pixel is in the box, and
    the box hugs the change (no more than a few pixels of slack on any side)."""
    for i in range(25):
        clean = gen.sample(i, scenario, force_label="ok")
        marked = gen.sample(i, scenario, force_label=label)
        assert marked.label == label and clean.boxes == ()
        rows, cols = _differing_pixels(clean.image, marked.image)
        assert rows.size >= 15, f"index {i}: the {label} is hardly visible ({rows.size} px)"
        (box,) = marked.boxes
        inside = ((cols >= math.floor(box.x)) & (cols < math.ceil(box.x + box.w))
                  & (rows >= math.floor(box.y)) & (rows < math.ceil(box.y + box.h)))
        assert inside.mean() >= 0.99, f"index {i}: {1 - inside.mean():.1%} of the {label} outside {box}"
        slack = (cols.min() - box.x, box.x + box.w - cols.max() - 1,
                 rows.min() - box.y, box.y + box.h - rows.max() - 1)
        assert max(slack) <= 3.5, f"index {i}: box {box} is loose around the {label}: {slack}"


@pytest.mark.parametrize("label", ["scratch", "crack", "stain"])
def test_surface_defects_lie_on_the_metal(gen: SceneGenerator, label: str) -> None:
    for i in range(25):
        clean = gen.sample(i, force_label="ok").image
        rows, cols = _differing_pixels(clean, gen.sample(i, force_label=label).image)
        # The belt is dark rubber (grey < 100); the metal is brighter everywhere.
        on_metal = grey(clean)[rows, cols] > 100
        assert on_metal.mean() >= 0.95, f"index {i}: {label} is off the part"


def test_missing_hole_leaves_metal_where_the_hole_was(gen: SceneGenerator) -> None:
    for i in range(25):
        missing = gen.sample(i, force_label="missing_hole")
        (box,) = missing.boxes
        # The middle of the box is the middle of the hole (the box also holds the chamfer).
        cx, cy = round(box.x + box.w / 2), round(box.y + box.h / 2)
        centre = (slice(cy - 2, cy + 2), slice(cx - 2, cx + 2))
        hole = grey(gen.sample(i, force_label="ok").image)[centre]
        filled = grey(missing.image)[centre]
        # Through the hole one sees the (shadowed) belt; without it, bright metal.
        assert hole.mean() < 80, f"index {i}: no hole drawn in the clean part"
        assert filled.min() > 100, f"index {i}: the missing hole is still there"


def test_forcing_a_label_keeps_the_scene(gen: SceneGenerator) -> None:
    """Only the defect differs between the classes of one index: most pixels are equal."""
    for i in range(5):
        base = gen.sample(i, force_label="ok").image
        for label in DEFECTS:
            rows, _ = _differing_pixels(base, gen.sample(i, force_label=label).image, threshold=0)
            assert rows.size < 0.05 * 128 * 128


# --- drift scenarios --------------------------------------------------------------------


def test_scenario_names_are_the_promised_ones() -> None:
    assert set(SCENARIOS) >= {"none", "lighting", "colour_cast", "blur", "noise", "camera",
                              "new_variant", "defect_rate"}


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_drift_and_zero_strength_give_the_undrifted_sample(gen: SceneGenerator, name: str) -> None:
    for i in range(8):
        plain = gen.sample(i)
        for scenario in ("none", Scenario("none"), Scenario(name, 0.0)):
            drifted = gen.sample(i, scenario)
            assert drifted.image.tobytes() == plain.image.tobytes()
            assert (drifted.label, drifted.boxes, drifted.part) == (plain.label, plain.boxes, plain.part)


def test_generator_default_scenario_applies_when_none_is_given() -> None:
    blurred = SceneGenerator(seed=4, scenario="blur")
    plain = SceneGenerator(seed=4)
    assert blurred.sample(3).scenario == "blur"
    assert blurred.sample(3).image.tobytes() == plain.sample(3, "blur").image.tobytes()
    assert blurred.sample(3, "none").image.tobytes() == plain.sample(3).image.tobytes()


@pytest.mark.parametrize("name", ["lighting", "colour_cast", "blur", "noise"])
def test_image_drifts_keep_labels_and_boxes(gen: SceneGenerator, name: str) -> None:
    for i in range(12):
        plain, drifted = gen.sample(i), gen.sample(i, name)
        assert (drifted.label, drifted.boxes, drifted.scenario) == (plain.label, plain.boxes, name)


def test_lighting_drift_darkens_and_more_with_strength(gen: SceneGenerator) -> None:
    means = [np.mean([grey(im).mean() for im in images(gen, Scenario("lighting", s))])
             for s in (0.0, 0.5, 1.0)]
    assert means[0] > means[1] > means[2]
    assert means[2] < 0.6 * means[0]


def test_colour_cast_drift_shifts_the_channel_balance(gen: SceneGenerator) -> None:
    def red_over_blue(scenario: str) -> float:
        stack = np.stack(images(gen, scenario)).astype(np.float64)
        return stack[..., 2].mean() / stack[..., 0].mean()

    assert 0.85 < red_over_blue("none") < 1.15
    assert red_over_blue("colour_cast") > 1.6
    assert 1.2 < red_over_blue("colour_cast:0.5") < red_over_blue("colour_cast")


def _sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(grey(image), cv2.CV_64F).var())


def _fine_noise(image: np.ndarray) -> float:
    """Energy the 3x3 median removes: sensor noise, not edges."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(np.abs(g.astype(np.float64) - cv2.medianBlur(g, 3)).mean())


def test_blur_drift_removes_detail(gen: SceneGenerator) -> None:
    plain = [_sharpness(im) for im in images(gen, "none")]
    half = [_sharpness(im) for im in images(gen, "blur:0.5")]
    full = [_sharpness(im) for im in images(gen, "blur")]
    assert all(f < p / 4 for f, p in zip(full, plain))
    assert np.mean(full) < np.mean(half) < np.mean(plain)


def test_noise_drift_adds_high_frequency_energy(gen: SceneGenerator) -> None:
    plain = [_fine_noise(im) for im in images(gen, "none")]
    noisy = [_fine_noise(im) for im in images(gen, "noise")]
    assert all(n > 3 * p for n, p in zip(noisy, plain))
    # Zero-mean noise: the brightness stays (clipping at black shifts it a little).
    assert abs(np.mean([grey(im).mean() for im in images(gen, "noise")])
               - np.mean([grey(im).mean() for im in images(gen, "none")])) < 4


def _part_pixels(image: np.ndarray) -> np.ndarray:
    """Bright pixels between the guide rails: the part (the belt is darker than 100)."""
    size = image.shape[0]
    inner = grey(image)[size // 10: size - size // 10]
    return inner > 110


def test_camera_drift_magnifies_and_moves_the_view(gen: SceneGenerator) -> None:
    plain = [_part_pixels(im).sum() for im in images(gen, "none")]
    moved = [_part_pixels(im).sum() for im in images(gen, "camera")]
    assert np.mean(moved) > 1.35 * np.mean(plain)  # zoom 1.3 -> area about 1.7x
    shifts = []
    for i in range(12):
        before = gen.sample(i, force_label="missing_hole").boxes[0]
        after = gen.sample(i, "camera", force_label="missing_hole").boxes[0]
        # A hole is a circle: its box grows with the zoom, and its centre moves.
        assert 1.15 < after.w / before.w < 1.45
        shifts.append(math.hypot(after.x + after.w / 2 - before.x - before.w / 2,
                                 after.y + after.h / 2 - before.y - before.h / 2))
    assert np.mean(shifts) > 5


def test_new_variant_drift_brings_a_different_part(gen: SceneGenerator) -> None:
    def part_colour(scenario: str) -> float:
        ratios = []
        for im in images(gen, scenario):
            mask = _part_pixels(im)
            inner = im[12:-12].astype(np.float64)
            ratios.append(inner[..., 2][mask].mean() / inner[..., 0][mask].mean())
        return float(np.mean(ratios))

    assert {gen.sample(i, "new_variant").part for i in range(24)} == {"flange"}
    assert part_colour("none") < 1.1  # steel is neutral grey
    assert part_colour("new_variant") > 1.5  # brass is yellow
    half = Counter(gen.sample(i, "new_variant:0.5").part for i in range(200))
    assert 70 < half["flange"] < 130
    # Defects still land on the new part, inside their boxes.
    for i in range(10):
        clean = gen.sample(i, "new_variant", force_label="ok")
        cracked = gen.sample(i, "new_variant", force_label="crack")
        rows, cols = _differing_pixels(clean.image, cracked.image)
        (box,) = cracked.boxes
        assert rows.size and box.x <= cols.min() and cols.max() < box.x + box.w + 1


def test_defect_rate_drift_raises_the_defect_share() -> None:
    gen = SceneGenerator(seed=5, defect_rate=0.5)
    n = 2000

    def defect_share(scenario: str) -> float:
        return sum(gen.label_of(i, scenario) != "ok" for i in range(n)) / n

    assert abs(defect_share("none") - 0.5) < 0.05
    assert abs(defect_share("defect_rate:0.5") - 0.7) < 0.05
    assert abs(defect_share("defect_rate") - 0.9) < 0.03
    # A part that was defective stays the same defect as the rate rises.
    for i in range(300):
        if gen.label_of(i) != "ok":
            assert gen.label_of(i, "defect_rate") == gen.label_of(i)
    # ...and the rendered samples carry the drifted labels.
    assert [gen.sample(i, "defect_rate").label for i in range(20)] == \
           [gen.label_of(i, "defect_rate") for i in range(20)]


# --- scenarios and schedules ------------------------------------------------------------


def test_scenario_validation_and_text_form() -> None:
    assert Scenario.parse("blur:0.25") == Scenario("blur", 0.25)
    assert Scenario.parse(" noise ") == Scenario("noise", 1.0)
    assert str(Scenario("blur", 0.25)) == "blur:0.25" and str(Scenario("camera")) == "camera"
    assert Scenario("blur", 1) == Scenario("blur", 1.0)
    with pytest.raises(ValueError, match="unknown scenario 'fog'; known: none, lighting"):
        Scenario("fog")
    with pytest.raises(ValueError, match="from 0 to 1"):
        Scenario("blur", 1.5)
    with pytest.raises(ValueError, match="bad strength 'x'"):
        Scenario.parse("blur:x")


def test_schedule_switches_at_the_given_times() -> None:
    schedule = Schedule([(600, "lighting"), (0, "none"), (1200, Scenario("blur", 0.5))])
    assert schedule.at(0) == Scenario("none")
    assert schedule.at(599.999) == Scenario("none")
    assert schedule.at(600) == Scenario("lighting")
    assert schedule.at(1199.5) == Scenario("lighting")
    assert schedule.at(1200) == Scenario("blur", 0.5)
    assert schedule.at(1e9) == Scenario("blur", 0.5)
    late = Schedule([(100, "noise:0.3")])
    assert late.at(99) == Scenario("none") and late.at(100) == Scenario("noise", 0.3)
    assert schedule == Schedule.parse("none@0,lighting@600,blur:0.5@1200")
    assert str(schedule) == "none@0,lighting@600,blur:0.5@1200"


def test_schedule_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match="two schedule steps at 5 s"):
        Schedule([(5, "none"), (5.0, "blur")])
    with pytest.raises(ValueError, match="at least one step"):
        Schedule([])
    with pytest.raises(ValueError, match="step 2"):
        Schedule([(0, "none"), (-3, "blur")])
    with pytest.raises(ValueError, match="not a .seconds, scenario. pair"):
        Schedule([(0, "none", "extra")])  # type: ignore[list-item]


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty schedule"),
    ("none@0,", "schedule step 2 is empty"),
    ("blur", "step 1 'blur' has no '@seconds'"),
    ("none@0,blur@", "step 2 'blur@': '' is not a number"),
    ("none@0,blur@ten", "step 2 'blur@ten': 'ten' is not a number"),
    ("@5", "step 1 '@5' has no scenario name"),
    ("none@0,fog@10", "step 2 'fog@10': unknown scenario 'fog'"),
    ("blur:2@10", "step 1 'blur:2@10': scenario strength must be from 0 to 1"),
    ("blur:x@10", "step 1 'blur:x@10': bad strength 'x'"),
    ("blur@-5", "step 1 'blur@-5': time must be"),
    ("blur@inf", "step 1 'blur@inf': time must be"),
    ("none@0,blur@0", "two schedule steps at 0 s"),
])
def test_schedule_parse_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        Schedule.parse(text)
    assert message in str(err.value)


_steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1e7, allow_nan=False),
        st.sampled_from(SCENARIOS),
        st.floats(min_value=0, max_value=1, allow_nan=False),
    ),
    min_size=1, max_size=8, unique_by=lambda step: step[0],
)


@settings(max_examples=150, deadline=None)
@given(_steps)
def test_schedule_text_round_trips(steps: list[tuple[float, str, float]]) -> None:
    schedule = Schedule([(t, Scenario(name, strength)) for t, name, strength in steps])
    text = str(schedule)
    again = Schedule.parse(text)
    assert again == schedule
    assert str(again) == text
    for t, name, strength in steps:
        assert again.at(t) == Scenario(name, strength)
    # Spaces around the separators are tolerated.
    assert Schedule.parse(" , ".join(text.split(","))) == schedule


# --- what the package may import ----------------------------------------------------------


def test_scene_imports_only_numpy_opencv_and_the_standard_library() -> None:
    """It runs on the device agent: every import in the package is numpy, cv2, the standard
    library or the package itself."""
    import ast

    allowed = {"numpy", "cv2", "__future__"} | set(sys.stdlib_module_names)
    package = ROOT / "app" / "core" / "scene"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 4
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: use absolute imports"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed or name.startswith("app.core.scene"), \
                    f"{path.name} imports {name}"


def test_scene_imports_with_torch_sqlalchemy_and_qt_absent() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'sqlalchemy', 'alembic', 'PySide6'): sys.modules[name] = None\n"
        "from app.core.scene import SceneGenerator\n"
        "SceneGenerator(size=64).sample(0, 'noise')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
