"""The pages about the site itself: the FAQ and the page for a path that is not there (404).

Both are written by the Scribe at the master's start (they change only with the farm's
settings). The FAQ's tables of build states, causes and outcomes are made from the lists the
farm itself uses (:class:`~piwheels.records.builds.BuildState`,
:data:`piwheels.failures.EXPLAINED`), so a state or cause added there cannot be missing here:
rendering fails without its words, and so do the tests.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from piwheels.failures import EXPLAINED, OUTCOME_MEANINGS, Cause, Outcome
from piwheels.records.builds import BuildState
from piwheels.web.pages import render

# What each state in a project page's version x ABI table means.
STATE_MEANINGS: dict[BuildState, str] = {
    BuildState.BUILT: "built: its wheel is in the index (the cell links the build's log)",
    BuildState.COVERED: (
        "no build of its own is needed: a wheel built for an earlier ABI (a pure-Python or "
        "abi3 wheel) serves this one too"
    ),
    BuildState.PENDING: (
        "not built yet: the cell says where it is in the queue (the operator's priorities "
        "first, then each project's newest release, then the backlog of older versions) and "
        "how many builds are ahead of it, or that it waits for a lower ABI to be built first"
    ),
    BuildState.BUILDING: "a builder has it in hand",
    BuildState.FAILED: (
        "the build failed and will not be tried again until the farm's operator retries it; "
        "the cell says why, and links the log"
    ),
    BuildState.DEP_WAIT: (
        "the build failed for want of something that can arrive, and is built again when it "
        "does: a newer release on PyPI of a build requirement, or a Debian package on the "
        "builders; the cell says which"
    ),
    BuildState.GIVE_BACK: (
        "the build failed for a passing cause (the network, a full disk, a lost builder ...) "
        "and is tried again later; the cell says when"
    ),
    BuildState.SKIPPED: (
        "never built, for the reason the cell gives (the version's Requires-Python excludes "
        "this Python, PyPI has no source distribution of it, the operator said so ...)"
    ),
    BuildState.YANKED: "yanked on PyPI, so not built (wheels built before the yank stay)",
}


class Contact(NamedTuple):
    """How to reach the farm's operator, as the FAQ shows it."""

    text: str
    href: str | None  # a mailto: or web link, when the text is one


_EMAIL = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
_WEB = re.compile(r"https?://[^\s<>\"]+")


def contact_of(text: str) -> Contact | None:
    """*text* (the master's ``--contact``) as a link where it is an e-mail address or a web
    address, else as plain text; None when empty."""
    text = text.strip()
    if not text:
        return None
    if _EMAIL.fullmatch(text):
        return Contact(text, f"mailto:{text}")
    if _WEB.fullmatch(text):
        return Contact(text, text)
    return Contact(text, None)


def faq_page(*, base_url: str | None = None, contact: str = "") -> str:
    """The FAQ: using the index with pip and uv, what the states, causes and outcomes on the
    project pages mean, and how to report a problem. *base_url* as for the project pages (else
    filled in by ``static/site.js``); *contact* is the operator's, shown as a link if it is one.
    """
    return render(
        "faq.html",
        base_url=base_url.rstrip("/") if base_url else None,
        states=[(str(state), STATE_MEANINGS[state]) for state in BuildState],
        causes=[(str(cause), EXPLAINED[cause]) for cause in Cause],
        outcomes=[(str(outcome), OUTCOME_MEANINGS[outcome]) for outcome in Outcome],
        contact=contact_of(contact),
    )


def not_found_page() -> str:
    """What a missing path gets, with status 404: the site's look and its ways in."""
    return render("404.html")
