"""Procedural factory scene: synthetic inspection images of parts on a conveyor.

Used to train and test defect classifiers and to feed the simulated edge devices, so it
imports only numpy, OpenCV and the standard library (it runs on the device agent).

    gen = SceneGenerator(seed=1, size=128, defect_rate=0.5)
    s = gen.sample(42)                       # Sample: BGR image, label, defect box
    s = gen.sample(42, "blur:0.5")           # the same scene, half-strength defocus
    Schedule.parse("none@0,lighting@600").at(700)   # the drift in force at t = 700 s

Modules: sample (classes, Box, Sample), scenarios (Scenario, Schedule), generator
(SceneGenerator), render / parts / defects / textures (drawing), drift (image-level drift).
"""

from app.core.scene.generator import SceneGenerator
from app.core.scene.sample import CLASSES, Box, Sample
from app.core.scene.scenarios import SCENARIOS, Scenario, Schedule

__all__ = ["CLASSES", "SCENARIOS", "Box", "Sample", "Scenario", "Schedule", "SceneGenerator"]
