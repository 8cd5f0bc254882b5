"""The ``ringback`` command line: :mod:`main` is the root app, :mod:`support` what every
sub-command shares (failing with a clear message, loading settings and the database)."""
