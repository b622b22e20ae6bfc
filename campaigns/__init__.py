"""Bounded campaigns against a farm of their own, on loopback: ``hostile.py`` throws what a
hostile peer could send at a running master (issue #13); ``chaos.py`` kills its parts mid-work
(issue #21). See README.md."""
