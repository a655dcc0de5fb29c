"""The label schema (classes of the project) and annotations made on captures."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.models.base import Base, UTCDateTime, utcnow
from app.core.models.users import enum_column


class LabelClass(Base):
    """One class of the project's label schema. Retired classes stay so old labels resolve."""

    __tablename__ = "label_classes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    color: Mapped[str] = mapped_column(String(9), default="#808080")
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LabelClassAlias(Base):
    """A name that still means a class: a class's old name after a rename, or a merged
    class's name after a merge (it then names the class it was merged into).

    Devices and observers running an older model keep reporting the old names; resolving
    them through this table (:mod:`app.core.class_names`) maps their predictions to the
    class the name means now, instead of creating the old class again.
    """

    __tablename__ = "label_class_aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("label_classes.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnnotationSource(str, enum.Enum):
    """Where a label came from: a person, a person confirming a model's pre-label, a file."""

    HUMAN = "human"
    MODEL_ASSISTED = "model_assisted"
    IMPORTED = "imported"


class Annotation(Base):
    """A label given to a capture: a class, and/or boxes. Never edited: a new one supersedes."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id"), default=None)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    source: Mapped[AnnotationSource] = mapped_column(enum_column(AnnotationSource))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    # The annotation this one restates with the merged-into class after a class merge (the
    # judgement stays its author's; the audit event says who merged). A plain integer, not a
    # foreign key: SQLite adds a foreign-key column only by copying the table, and dropping
    # the old copy would cascade-delete every box. Both rows belong to one capture, so they
    # are deleted together.
    replaces_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # An engineer's final label over disagreeing annotations (it superseded all of them);
    # agreement statistics leave these out, since they are not an independent opinion.
    resolves_conflict: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=false())

    boxes: Mapped[list[AnnotationBox]] = relationship(
        back_populates="annotation", cascade="all, delete-orphan", order_by="AnnotationBox.id"
    )


class AnnotationBox(Base):
    """An axis-aligned box of an annotation, in pixels of the capture image."""

    __tablename__ = "annotation_boxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )
    class_id: Mapped[int] = mapped_column(ForeignKey("label_classes.id"))
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)

    annotation: Mapped[Annotation] = relationship(back_populates="boxes")
