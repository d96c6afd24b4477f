"""The network side: picks into a database, associated into located events, out to observatory formats.

Numpy and the standard library at import; psycopg (PostgreSQL) and ObsPy
(QuakeML, SeisComP XML, StationXML) only where a feature needs them.  The
station runtime (``fieldpick.edge``) never imports this package; ``fieldpick
receive --db`` does, lazily.  See docs/network.md.
"""
