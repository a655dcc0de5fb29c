"""Datasets and their immutable versions: a frozen set of samples, labels and split."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


class Split(str, enum.Enum):
    """Which part of a dataset version a sample belongs to."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class Dataset(Base):
    """A named line of dataset versions (for example "inspection")."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.number"
    )


class DatasetVersion(Base):
    """A frozen version. Once ``frozen_at`` is set neither it nor its samples may change."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number", name="uq_dataset_versions_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    number: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    split_seed: Mapped[int] = mapped_column(Integer, default=0)
    label_schema: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The class id of each name in ``label_schema``, in the same order, so a version resolves
    # its samples' class ids through the names it was frozen with, whatever a later rename
    # does. None only for a version written without it (then the current names are used).
    label_class_ids: Mapped[list[int] | None] = mapped_column(JSONType, default=None)
    notes: Mapped[str] = mapped_column(Text, default="")

    dataset: Mapped[Dataset] = relationship(back_populates="versions")
    samples: Mapped[list[DatasetSample]] = relationship(
        back_populates="version", order_by="DatasetSample.id"
    )


class DatasetSample(Base):
    """One capture in a dataset version, with a copy of the label it had when frozen."""

    __tablename__ = "dataset_samples"
    __table_args__ = (
        UniqueConstraint("version_id", "capture_id", name="uq_dataset_samples_capture"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    split: Mapped[Split] = mapped_column(enum_column(Split))
    class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id"), default=None)
    boxes: Mapped[list[dict]] = mapped_column(JSONType, default=list)

    version: Mapped[DatasetVersion] = relationship(back_populates="samples")
