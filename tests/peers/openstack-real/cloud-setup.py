"""Prepares the real OpenStack peers (scripts/peers start-openstack-real) over the REST APIs,
then prints `export ALLIANCE_TEST_OSREAL_*=value` lines.

Usage:
  cloud-setup.py identity KEYSTONE_V3_URL REGION ADMIN_PASSWORD SERVICE_PASSWORD BROKER_PASSWORD CATALOGUE_JSON
      after keystone-manage bootstrap: the `service` project and one user per service (admin
      and service roles on it: Nova <-> Cinder attach needs both, with service tokens), the
      catalogue (CATALOGUE_JSON is {type: [name, url]}, public/internal/admin endpoints in
      REGION), the broker's project `alliance-osreal` with the user `alliance-broker`
      (member role), and the domain `alliance-tenants` for tenant projects (the broker:
      manager on it, member inherited to its projects); prints the credentials under ALLIANCE_TEST_OSREAL_ (the names the
      adapter reads with that env_prefix) and the admin's under ALLIANCE_TEST_OSREAL_ADMIN_.
  cloud-setup.py resources KEYSTONE_V3_URL REGION ADMIN_PASSWORD IMAGE_FILE
      once Nova and Glance answer: the public flavors m1.small (id 1) and m1.medium (id 2),
      and IMAGE_FILE uploaded as a public raw image, waited for until active; then waits for
      Cinder's scheduler to know the volume backend; prints the ids.
"""
import json
import sys
import time
import urllib.error
import urllib.request

PREFIX = "ALLIANCE_TEST_OSREAL_"
SERVICES = ("nova", "placement", "glance", "cinder", "neutron")
FLAVORS = [
    {"id": "1", "name": "m1.small", "vcpus": 1, "ram": 128, "disk": 1},
    {"id": "2", "name": "m1.medium", "vcpus": 2, "ram": 256, "disk": 2},
    # More disk than the fake host has (600,000 GB; Nova has no disk quota): Placement finds no
    # host, the server ends in ERROR with Nova's fault "No valid host was found"
    # (tests/e2e/openstack_real.rs).
    {"id": "3", "name": "m1.impossible", "vcpus": 1, "ram": 128, "disk": 10000000},
]


def call(method, url, body=None, token=None, expect=(200, 201, 202, 204), raw=None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    h = {"Content-Type": "application/octet-stream" if raw is not None else "application/json",
         **({"X-Auth-Token": token} if token else {}), **(headers or {})}
    req = urllib.request.Request(url, method=method, data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            status, subject = r.status, r.headers.get("X-Subject-Token")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {url}: {e.code} {e.read()[:300]!r}")
    if status not in expect:
        raise SystemExit(f"{method} {url}: {status}")
    return (json.loads(text) if text else None), subject


def token(ks, user, password, project):
    body, subject = call("POST", ks + "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    return subject, body["token"]


def get_or_create(ks, admin, collection, key, body, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    found = call("GET", f"{ks}/{collection}?{q}", token=admin)[0][collection]
    if found:
        return found[0]["id"]
    return call("POST", f"{ks}/{collection}", {key: body}, admin)[0][key]["id"]


def identity(ks, region, admin_password, service_password, broker_password, catalogue):
    admin, _ = token(ks, "admin", admin_password, "admin")
    role = {n: get_or_create(ks, admin, "roles", "role", {"name": n}, name=n)
            for n in ("admin", "manager", "member", "reader", "service")}

    def project(name):
        return get_or_create(ks, admin, "projects", "project", {"name": name, "domain_id": "default"}, name=name)

    def user(name, password, project_id):
        return get_or_create(ks, admin, "users", "user", {"name": name, "password": password, "domain_id": "default",
                                                          "default_project_id": project_id}, name=name)

    def grant(project_id, user_id, role_name):
        call("PUT", f"{ks}/projects/{project_id}/users/{user_id}/roles/{role[role_name]}", token=admin)

    service = project("service")
    for name in SERVICES:
        uid = user(name, service_password, service)
        grant(service, uid, "admin")
        grant(service, uid, "service")
    for kind, (name, url) in json.loads(catalogue).items():
        sid = get_or_create(ks, admin, "services", "service", {"type": kind, "name": name}, type=kind)
        for interface in ("public", "internal", "admin"):
            call("POST", f"{ks}/endpoints", {"endpoint": {"service_id": sid, "interface": interface, "url": url,
                                                          "region_id": region}}, admin)
    broker_project = project("alliance-osreal")
    broker = user("alliance-broker", broker_password, broker_project)
    grant(broker_project, broker, "member")
    token(ks, "alliance-broker", broker_password, "alliance-osreal")  # the broker can log in
    # A project per tenant: the domain `alliance-tenants`, where the broker may create
    # projects (`manager`) and holds `member` on each of them by inheritance (the least
    # privilege docs/adapters.md asks a member to grant).
    domain = get_or_create(ks, admin, "domains", "domain", {"name": "alliance-tenants"}, name="alliance-tenants")
    call("PUT", f"{ks}/domains/{domain}/users/{broker}/roles/{role['manager']}", token=admin)
    call("PUT", f"{ks}/OS-INHERIT/domains/{domain}/users/{broker}/roles/{role['member']}/inherited_to_projects",
         token=admin)
    return {
        "TENANT_PROJECT_DOMAIN": "alliance-tenants",
        "AUTH_URL": ks,
        "REGION_NAME": region,
        "REGION": region,
        "USERNAME": "alliance-broker",
        "PASSWORD": broker_password,
        "PROJECT_NAME": "alliance-osreal",
        "PROJECT_ID": broker_project,
        "USER_DOMAIN_NAME": "Default",
        "PROJECT_DOMAIN_NAME": "Default",
        "ADMIN_AUTH_URL": ks,
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": admin_password,
        "ADMIN_PROJECT_NAME": "admin",
        "ADMIN_USER_DOMAIN_NAME": "Default",
        "ADMIN_PROJECT_DOMAIN_NAME": "Default",
    }


def endpoint(catalog, kind, region):
    for service in catalog:
        if service["type"] == kind:
            for e in service["endpoints"]:
                if e["interface"] == "public" and e["region_id"] == region:
                    return e["url"].rstrip("/")
    raise SystemExit(f"no public {kind} endpoint in {region}")


def resources(ks, region, admin_password, image_file):
    admin, body = token(ks, "admin", admin_password, "admin")
    nova = endpoint(body["catalog"], "compute", region)
    glance = endpoint(body["catalog"], "image", region)
    cinder = endpoint(body["catalog"], "block-storage", region)
    for flavor in FLAVORS:
        call("POST", nova + "/flavors", {"flavor": flavor}, admin)
    image = call("POST", glance + "/v2/images", {"name": "alliance-tiny", "disk_format": "raw",
                                                 "container_format": "bare", "visibility": "public"}, admin)[0]
    with open(image_file, "rb") as f:
        call("PUT", f"{glance}/v2/images/{image['id']}/file", token=admin, raw=f.read())
    for _ in range(120):
        status = call("GET", f"{glance}/v2/images/{image['id']}", token=admin)[0]["status"]
        if status == "active":
            break
        if status in ("killed", "deleted"):
            raise SystemExit(f"image {image['id']} is {status}")
        time.sleep(0.5)
    else:
        raise SystemExit(f"image {image['id']} never became active")
    # A volume create fails (no valid backend) until cinder-volume has told the scheduler.
    for _ in range(120):
        if call("GET", cinder + "/scheduler-stats/get_pools", token=admin)[0]["pools"]:
            break
        time.sleep(0.5)
    else:
        raise SystemExit("cinder-volume never reported its pool to the scheduler")
    return {"IMAGE": image["id"], "FLAVOR_SMALL": FLAVORS[0]["id"], "FLAVOR_MEDIUM": FLAVORS[1]["id"],
            "FLAVOR_IMPOSSIBLE": FLAVORS[2]["id"]}


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    exports = identity(*args) if command == "identity" else resources(*args)
    for k, v in exports.items():
        print(f"export {PREFIX}{k}={v}")
