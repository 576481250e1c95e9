"""The exporter's own port: who may read it and what a client can cost.

``webconfig`` parses and checks exporter-toolkit's web config and builds its ``SSLContext``;
``webauth`` is the ASGI middleware for basic auth (bcrypt) and response headers;
``connections`` the per-connection protocols (cap, TLS, timeouts); ``noise`` the log throttle;
``server`` the uvicorn glue that puts them together and reloads on SIGHUP.
Imports go one way: webconfig ← webauth ← server; noise ← connections ← server.
"""
