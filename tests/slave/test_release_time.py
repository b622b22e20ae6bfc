"""A build's SOURCE_DATE_EPOCH: the sdist's upload time, as the index says it (PEP 700)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.slave.release_time import ZIP_EPOCH, sdist_upload_time, source_date_epoch
from pypi_index import LocalPyPI, SdistFactory


@pytest.fixture(scope="module")
def index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        served.add_catalogue([("piwtest-pure", "1.0", None)])
        yield served


def test_source_date_epoch_is_the_sdists_upload_time(index: LocalPyPI) -> None:
    uploaded = sdist_upload_time(index.simple_url, "piwtest-pure", "1.0")
    assert uploaded is not None
    epoch, why = source_date_epoch(index.simple_url, "piwtest-pure", "1.0")
    assert epoch == int(uploaded.timestamp())
    assert why.startswith("the sdist's upload time")
    # a version the index does not have: still one value every builder agrees on
    assert source_date_epoch(index.simple_url, "piwtest-pure", "9.9")[0] == ZIP_EPOCH
    assert source_date_epoch("http://127.0.0.1:9/simple/", "piwtest-pure", "1.0")[0] == ZIP_EPOCH


def test_the_version_and_name_are_matched_as_the_index_spells_them(index: LocalPyPI) -> None:
    uploaded = sdist_upload_time(index.simple_url, "piwtest-pure", "1.0")
    assert uploaded is not None and uploaded.utcoffset() is not None
    # another spelling of the same name (the index redirects) and of the same version
    assert sdist_upload_time(index.simple_url, "PIWTEST_Pure", "1.0.0") == uploaded
    assert sdist_upload_time(index.simple_url.rstrip("/"), "piwtest-pure", "1.0") == uploaded


def test_a_page_the_index_does_not_have_says_nothing(
    index: LocalPyPI, caplog: pytest.LogCaptureFixture
) -> None:
    assert sdist_upload_time(index.simple_url, "piwtest-nothing", "1.0") is None
    assert "cannot read the upload time of piwtest-nothing 1.0" in caplog.text
    # a version without an sdist there
    assert sdist_upload_time(index.simple_url, "piwtest-pure", "2.0") is None
