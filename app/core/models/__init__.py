"""The typed SQLAlchemy models of a project database, one module per area."""

from app.core.models.audit import AuditEvent, AuditHead
from app.core.models.base import Base, utcnow
from app.core.models.blob import Blob
from app.core.models.captures import (
    Capture, CaptureCount, CaptureReason, QuarantinedCapture, ReviewStatus,
)
from app.core.models.datasets import Dataset, DatasetSample, DatasetVersion, Split
from app.core.models.deploy import Deployment, DeploymentState, Rollout, RolloutState
from app.core.models.devices import (
    Device, DeviceDriftHour, DeviceHealth, EnrollmentState, HealthSample,
)
from app.core.models.drift import DriftBaseline, DriftMeasurement
from app.core.models import guards as _guards  # noqa: F401  (registers the flush guards)
from app.core.models.labels import (
    Annotation, AnnotationBox, AnnotationSource, LabelClass, LabelClassAlias,
)
from app.core.models.observer import Observation, ReviewItem, ReviewKind
from app.core.models.pipeline import PipelineRun, PipelineState, PipelineStep
from app.core.models.settings import ProjectSetting
from app.core.models.training import (
    ArtifactFormat,
    ModelArtifact,
    ModelKind,
    ModelStatus,
    ModelVersion,
    RunStatus,
    TrainingRun,
)
from app.core.models.users import Role, User

__all__ = [
    "Annotation", "AnnotationBox", "AnnotationSource", "ArtifactFormat", "AuditEvent",
    "AuditHead", "Base", "Blob", "Capture", "CaptureCount", "CaptureReason", "Dataset", "DatasetSample",
    "DatasetVersion", "Deployment", "DeploymentState", "Device", "DeviceDriftHour",
    "DeviceHealth", "DriftBaseline", "DriftMeasurement", "EnrollmentState", "HealthSample", "QuarantinedCapture", "LabelClass", "LabelClassAlias", "ModelArtifact", "ModelKind", "ModelStatus", "ModelVersion",
    "Observation", "PipelineRun", "PipelineState", "PipelineStep", "ProjectSetting",
    "ReviewItem", "ReviewKind", "Role", "Rollout", "RolloutState", "RunStatus", "Split", "TrainingRun",
    "User", "utcnow",
]
