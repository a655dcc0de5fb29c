"""The labeling pane's cards, read in bulk, say what label_of and prelabel say one by one."""

from __future__ import annotations

from sqlalchemy import update

from app.annotate.capture_card import capture_cards
from app.annotate.labeling import BoxDraft, LabelDraft, label_of, prelabel, save_label
from app.core.models import AnnotationSource, LabelClass, Role
from app.core.project import Project
from app.core.users import actor_named, add_user
from tests.support.labeling import fill_captures


def test_cards_agree_with_label_of_and_prelabel(sqlite_project: Project) -> None:
    p = sqlite_project
    ids = fill_captures(p, 12, size=64, unpredicted={4, 5})
    admin = actor_named(p.db, "admin")
    add_user(p.db, p.audit, admin, "maria", Role.ANNOTATOR)
    maria = actor_named(p.db, "maria")
    save_label(p.db, p.audit, admin, ids[0], LabelDraft("scratch"))
    save_label(p.db, p.audit, admin, ids[1], LabelDraft("crack", (
        BoxDraft("crack", 3, 4, 10, 12), BoxDraft("stain", 20, 20, 5.5, 6.25))))
    save_label(p.db, p.audit, admin, ids[1], LabelDraft(None, (BoxDraft("ok", 1, 1, 2, 2),)),
               source=AnnotationSource.MODEL_ASSISTED)  # supersedes the one before
    save_label(p.db, p.audit, maria, ids[1], LabelDraft("stain"))  # another's: not admin's
    save_label(p.db, p.audit, maria, ids[2], LabelDraft("ok"))
    with p.db.write() as s:  # a retired class is no pre-label: the edge model's counts then
        s.execute(update(LabelClass).where(LabelClass.name == "ok").values(retired=True))

    for author in ("admin", "maria"):
        cards = capture_cards(p.db, ids + [999_999], author)
        assert sorted(cards) == sorted(ids)  # an unknown capture is left out
        for capture_id, card in cards.items():
            assert card.own_label == label_of(p.db, capture_id, author)
            found = prelabel(p.db, capture_id)
            assert (card.prelabel, card.prelabel_from) == (found if found else (None, None))
    cards = capture_cards(p.db, ids, "admin")
    assert cards[ids[1]].own_label == LabelDraft(None, (BoxDraft("ok", 1, 1, 2, 2),))
    assert cards[ids[2]].own_label is None
    assert {c.prelabel_from for c in cards.values()} == {"observer", "edge model", None}
    assert capture_cards(p.db, ids[:1], "nobody")[ids[0]].own_label is None
