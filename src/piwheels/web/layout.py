"""Where everything is in the output directory.

The output directory (served as-is by any static web server; see deploy/):

    index.html                          home page, with Big Brother's statistics
    packages.json                       the search index
    search/index.html                   the search page
    faq/index.html                      the FAQ
    404.html                            what a missing path gets (with status 404)
    sitemap.xml                         the sitemap, or past 50,000 URLs the index of
    sitemap-<n>.xml                       the numbered sitemaps (piwheels.web.sitemap)
    simple/index.html, index.json       the index root (PEP 503 / PEP 691)
    simple/<name>/index.html, .json     one project's files (PEP 503/592/629/691/700/714)
    simple/<name>/<wheel>               the wheels (written by the File Juggler)
    simple/<name>/<wheel>.metadata      each wheel's METADATA, byte for byte (PEP 658)
    project/<name>/index.html           the project page
    project/<name>/json/index.json      the same data as JSON
    logs/<a>/<b>/<build_id>.txt.gz      build logs, gzipped (served as text/plain)
    static/                             CSS and the search script
    .incoming/                          files on their way in (the File Juggler's, see
                                          MasterConfig.incoming_dir; dot-names are not served)
"""

from __future__ import annotations

NOT_FOUND_PAGE = "404.html"  # the deploy configs name it too


def log_path(build_id: int) -> str:
    """Where a build's log lives, relative to the output directory.

    Two levels of directories keep any one directory to about a thousand entries at millions of
    builds.

    >>> log_path(1234567)
    'logs/0001/0234/1234567.txt.gz'
    """
    return f"logs/{build_id // 1_000_000:04d}/{build_id // 1000 % 1000:04d}/{build_id}.txt.gz"
