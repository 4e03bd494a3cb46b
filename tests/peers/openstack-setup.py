"""Prepares the real Keystone for the adapter tests, then prints `export NAME=value` lines.

Usage: openstack-setup.py KEYSTONE_V3_URL ADMIN_PASSWORD FAKE_URL SWIFT_URL

- a project `alliance-be` and a user `alliance-broker` (random password) with the `member`
  role on it, plus an application credential of that user;
- the catalogue: compute, volumev3, image and network (the project's fake) and object-store
  (real Swift, keystoneauth) in region `be-bru-1` on the public interface; decoys that the
  adapter must NOT pick: internal-interface endpoints and a second region `de-fra-1`, all
  pointing at a closed port; a region `be-ant-1` that offers only object-store; and a
  region `lu-ssrf-1` like `be-bru-1` except that its object-store points at 10.255.0.1, outside
  the broker's allowed member networks (a partner's catalogue must be refused for it).
"""
import json
import secrets
import sys
import urllib.request

ks, admin_password, fake, swift = sys.argv[1:5]
DECOY = "http://127.0.0.1:9"


def call(method, path, body=None, token=None, expect=(200, 201, 204)):
    req = urllib.request.Request(ks + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **({"X-Auth-Token": token} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        if r.status not in expect:
            raise SystemExit(f"{method} {path}: {r.status}")
        data = r.read()
        return (json.loads(data) if data else None), r.headers.get("X-Subject-Token")


def token(user, password, project):
    _, t = call("POST", "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    return t


admin = token("admin", admin_password, "admin")
project = call("POST", "/projects", {"project": {"name": "alliance-be", "domain_id": "default"}}, admin)[0]["project"]
password = secrets.token_urlsafe(18)
user = call("POST", "/users", {"user": {"name": "alliance-broker", "domain_id": "default", "password": password,
                                        "default_project_id": project["id"]}}, admin)[0]["user"]
roles = call("GET", "/roles?name=member", None, admin)[0]["roles"]
call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{roles[0]['id']}", None, admin)
call("POST", "/regions", {"region": {"id": "de-fra-1"}}, admin)
call("POST", "/regions", {"region": {"id": "be-ant-1"}}, admin)
call("POST", "/regions", {"region": {"id": "lu-ssrf-1"}}, admin)
OUTSIDE = "http://10.255.0.1:8080/v1/AUTH_$(project_id)s"

catalogue = [
    ("compute", "nova", f"{fake}/compute/v2.1"),
    ("volumev3", "cinderv3", f"{fake}/volume/v3/$(project_id)s"),
    ("image", "glance", f"{fake}/image"),
    ("network", "neutron", f"{fake}/network"),
    ("object-store", "swift", f"{swift}/v1/AUTH_$(project_id)s"),
]
for kind, name, url in catalogue:
    service = call("POST", "/services", {"service": {"type": kind, "name": name}}, admin)[0]["service"]
    endpoints = [("public", "be-bru-1", url), ("internal", "be-bru-1", DECOY), ("public", "de-fra-1", DECOY)]
    if kind == "object-store":
        # A region that offers object storage only (conformance must skip the rest).
        endpoints.append(("public", "be-ant-1", url))
    endpoints.append(("public", "lu-ssrf-1", OUTSIDE if kind == "object-store" else url))
    for interface, region, target in endpoints:
        call("POST", "/endpoints", {"endpoint": {"service_id": service["id"], "interface": interface,
                                                 "url": target, "region_id": region}}, admin)

broker = token("alliance-broker", password, "alliance-be")
app = call("POST", f"/users/{user['id']}/application_credentials",
           {"application_credential": {"name": "alliance-broker-tests"}}, broker)[0]["application_credential"]

exports = {
    # Password credentials, standard OS_* names under the ALLIANCE_TEST_OS_ prefix.
    "ALLIANCE_TEST_OS_AUTH_URL": ks,
    "ALLIANCE_TEST_OS_REGION_NAME": "be-bru-1",
    "ALLIANCE_TEST_OS_USERNAME": "alliance-broker",
    "ALLIANCE_TEST_OS_PASSWORD": password,
    "ALLIANCE_TEST_OS_PROJECT_NAME": "alliance-be",
    "ALLIANCE_TEST_OS_USER_DOMAIN_NAME": "Default",
    "ALLIANCE_TEST_OS_PROJECT_DOMAIN_NAME": "Default",
    # The application credential, under ALLIANCE_TEST_OSAPP_.
    "ALLIANCE_TEST_OSAPP_AUTH_URL": ks,
    "ALLIANCE_TEST_OSAPP_APPLICATION_CREDENTIAL_ID": app["id"],
    "ALLIANCE_TEST_OSAPP_APPLICATION_CREDENTIAL_SECRET": app["secret"],
    "ALLIANCE_TEST_OS_PROJECT_ID": project["id"],
    "ALLIANCE_TEST_OPENSTACK_FAKE": fake,
    "ALLIANCE_TEST_SWIFT": swift,
}
for k, v in exports.items():
    print(f"export {k}={v}")
