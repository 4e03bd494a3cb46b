"""gunicorn's entry point for the real OpenStack APIs (scripts/peers start-openstack-real):
`osreal_wsgi:application` with OSREAL_SERVICE=keystone|placement|glance|nova|cinder|neutron.

Why not the services' own modules directly: Keystone, Nova, Cinder and Neutron hand
`sys.argv` to oslo.config, which then chokes on gunicorn's arguments, so argv is replaced
first (by the service's name plus OSREAL_ARGS, e.g. `--config-file X`; the config dirs come
from OS_<SERVICE>_CONFIG_DIR). And Neutron's ML2 without service plugins answers
`GET /v2.0/ports` with a 500 (no `Port.port_forwardings` backref) unless every DB model is
imported and the mappers configured before the app loads."""
import importlib
import os
import shlex
import sys

SERVICE = os.environ["OSREAL_SERVICE"]
MODULES = {
    "keystone": "keystone.wsgi.api",
    "placement": "placement.wsgi.api",
    "glance": "glance.wsgi.api",
    "nova": "nova.wsgi.osapi_compute",
    "cinder": "cinder.wsgi.api",
    "neutron": "neutron.wsgi.api",
}

sys.argv = [f"{SERVICE}-api"] + shlex.split(os.environ.get("OSREAL_ARGS", ""))
if SERVICE == "neutron":
    from neutron.db.migration.models import head  # noqa: F401
    from sqlalchemy import orm

    orm.configure_mappers()
application = importlib.import_module(MODULES[SERVICE]).application
