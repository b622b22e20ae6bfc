"""Following PyPI (or a mirror): which projects exist and at what serial, and what each holds.

The project list comes from the simple index's root in PEP 691 JSON (PyPI adds a ``_last-serial``
to each project and to the page); a project's details come from PyPI's JSON API, its status
(PEP 792) from its simple page. Diffing the list's serials against the ones recorded tells which
projects changed. Every request has a timeout, every response is checked before it is believed,
and each kind of failure has its own exception quoting the URL or name concerned, so a caller
can log it and try again later.

- :mod:`.client`: :class:`~.client.PyPIClient`, the one object callers hold.
- :mod:`.simple_index`: the project list, read from the simple index's root.
- :mod:`.json_api`: one project's details, read from the JSON API.
- :mod:`.statuses`: one project's status (PEP 792), read from its simple page.
- :mod:`.changelog`: the XML-RPC changelog, for mirrors that still offer it.
- :mod:`.fetching`: GETting JSON over kept-alive connections, within limits.
- :mod:`.answers`: the records all of these hand back, and the diff of serials.
- :mod:`.errors`: what can go wrong, one exception for each kind.
"""
