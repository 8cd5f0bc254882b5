"""Fakes of outside services that check our requests against the vendors' own contracts.

``contract`` holds the typed rules and the checker; ``openapi`` and ``discovery`` build
them from Square's OpenAPI and Google's discovery document; ``google_calendar`` and
``square`` are the fakes, served over real HTTP on 127.0.0.1 for tests.
"""
