"""A loopback Infisical API for the tests of the secret resolver and the onboarding script.

No Infisical server can run here (it needs its own Postgres, Redis and a Node.js backend
from a container image), so ``server.py`` serves, on 127.0.0.1, the endpoints the official
``infisicalsdk`` (PyPI) calls, with the JSON shapes its models parse: the universal-auth
login and the v3 raw secrets (list, get, create, update, delete by name). Every secrets
request must carry the bearer token the login issued.
"""
