"""What the project pages say of PyPI's project statuses (PEP 792) and of withheld wheels: one
place for the words, which the HTML page and its JSON twin share."""

from __future__ import annotations

from typing import Any

from piwheels.records.projects import ProjectData, WheelFile

# Shown at the top of the page of a project PyPI marks; "active" says nothing.
STATUS_NOTES = {
    "archived": "Archived on PyPI: its maintainers expect no more releases",
    "deprecated": "Deprecated on PyPI: its maintainers consider it obsolete",
    "quarantined": "Quarantined on PyPI as unsafe: its wheels are not served",
}

# Why a wheel is withheld, beside its name (a disagreement says what the builders made)
WITHHELD_WORDS = {
    "removed": "removed from PyPI",
    "quarantined": "quarantined on PyPI",
}


def status_note(project: ProjectData) -> str:
    """The note of *project*'s status, with PyPI's reason; "" for an active project."""
    note = STATUS_NOTES.get(project.status, "")
    return f"{note} ({project.status_reason})" if note and project.status_reason else note


def status_json(project: ProjectData) -> dict[str, Any]:
    """The project JSON's ``project_status``."""
    return {"status": project.status, "reason": project.status_reason or None}


def withheld_why(file: WheelFile) -> str:
    """Why *file* is withheld, in words; a file withheld before reasons were kept had a
    disagreement (migration 0016)."""
    reasons = file.withheld_for or ("disagreement",)
    return "; ".join(
        file.cross_check if reason == "disagreement" else WITHHELD_WORDS.get(reason, reason)
        for reason in reasons
    )
