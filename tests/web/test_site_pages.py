"""The FAQ and the 404 page: made from the farm's own lists of states, causes and outcomes, the
operator's contact escaped, and the built-in server sending the 404 page with status 404."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from outputs import PIP_ACCEPT, fetch

from piwheels.failures import (
    EXPLAINED,
    OUTCOME_MEANINGS,
    Cause,
    Diagnosis,
    Outcome,
    Want,
    outcome_of,
)
from piwheels.records.builds import BuildState
from piwheels.web import site_pages
from piwheels.web.layout import NOT_FOUND_PAGE
from piwheels.web.server import serve
from piwheels.web.writer import write_atomic


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page)))


def test_the_faq_explains_every_cause_state_and_outcome() -> None:
    page = site_pages.faq_page()
    text = text_of(page)
    assert set(EXPLAINED) == set(Cause)
    for cause in Cause:
        row = re.search(rf'<tr id="cause-{cause}">(.*?)</tr>', page)
        assert row, f"no row for {cause}"
        assert text_of(row.group(1)) == f"{cause}{EXPLAINED[cause].said}{EXPLAINED[cause].outcome}"
    for state in BuildState:
        assert f'<td class="{state}">{state}</td>' in page
        assert site_pages.STATE_MEANINGS[state] in text
    for outcome in Outcome:
        assert f'<dt class="{outcome}">{outcome}</dt>' in page
        assert html.unescape(OUTCOME_MEANINGS[outcome]) in text


def test_each_causes_outcome_is_what_the_farm_does() -> None:
    """EXPLAINED names every outcome outcome_of gives a cause, with or without what the build
    lacked: the FAQ cannot say dep-wait where the farm fails the build."""
    for cause in Cause:
        diagnoses = [
            Diagnosis(cause, ""),
            Diagnosis(cause, "", needs=("libfoo-dev",)),
            Diagnosis(cause, "", (Want("requirement", "cython>=3"),)),
        ]
        if cause in (Cause.OUT_OF_MEMORY, Cause.DISK_FULL):
            diagnoses.append(Diagnosis(cause, "", (Want("limit", "memory"),)))
        for diagnosis in diagnoses:
            outcome = outcome_of(diagnosis)[0]
            assert str(outcome) in EXPLAINED[cause].outcome, (cause, diagnosis)


def test_the_faq_says_how_to_use_the_index_with_pip_and_uv() -> None:
    text = text_of(site_pages.faq_page(base_url="https://wheels.example.org/"))
    index = "https://wheels.example.org/simple/"
    for words in (
        f"pip install --index-url {index} NAME",
        f"pip install --extra-index-url {index} NAME",
        f"[global] extra-index-url = {index}",
        "PIP_EXTRA_INDEX_URL",
        f"uv pip install --index-url {index} NAME",
        f'[[tool.uv.index]] name = "piwheels" url = "{index}"',
        f"UV_INDEX_URL={index}",
        "--index-strategy unsafe-best-match",
    ):
        assert words in text
    # without a public URL, static/site.js fills in the page's own origin
    assert '<span class="origin"></span>/simple/' in site_pages.faq_page()


@pytest.mark.parametrize(
    ("contact", "shown"),
    [
        ("", "Write to the operator of this farm."),
        ("wheels@example.org", '<a href="mailto:wheels@example.org">wheels@example.org</a>'),
        ("https://example.org/issues", '<a href="https://example.org/issues">'),
        ("#piwheels on Libera", "Write to the farm's operator: #piwheels on Libera."),
        (
            'javascript:alert(1)" <b>',
            "Write to the farm's operator: javascript:alert(1)&#34; &lt;b&gt;.",
        ),
    ],
)
def test_the_operators_contact(contact: str, shown: str) -> None:
    page = site_pages.faq_page(contact=contact)
    assert shown in page
    assert "javascript:" not in re.findall(r'href="([^"]*)"', page)[-1]


def test_the_faq_and_the_404_page_look_like_the_site() -> None:
    for page in (site_pages.faq_page(), site_pages.not_found_page()):
        assert '<link rel="stylesheet" href="/static/piwheels.css">' in page
        assert '<a href="/faq/">FAQ</a>' in page  # in every page's navigation
    assert "<h1>Not found</h1>" in site_pages.not_found_page()


def test_the_server_sends_the_404_page_with_status_404(tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / "simple").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("outside")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    with serve(root) as server:
        # before the master has written the page: a line of text
        bare = fetch(server.url, "/nothing/here")
        assert (bare.status, bare.body) == (404, b"not found\n")
        page = site_pages.not_found_page().encode()
        write_atomic(root / NOT_FOUND_PAGE, page)
        for path, headers in (
            ("/nothing/here", {}),
            ("/project/no-such-project/", {}),
            ("/simple/no-such-project/", {}),  # pip relies on this 404
            ("/simple/no-such-project/", {"Accept": PIP_ACCEPT}),
            ("/static/.site.js.x1y2.tmp", {}),
            ("/escape.txt", {}),  # refused: it leads out
            ("/logs/0000/0000/1.txt", {}),
        ):
            got = fetch(server.url, path, headers)
            assert got.status == 404, path
            assert got.headers["Content-Type"] == "text/html; charset=utf-8"
            assert got.body == page
        head = fetch(server.url, "/nothing/here", method="HEAD")
        assert (head.status, head.body) == (404, b"")
        assert head.headers["Content-Length"] == str(len(page))
