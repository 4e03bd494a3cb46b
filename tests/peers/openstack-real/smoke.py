"""Checks that the real OpenStack peers do what the broker needs, over the REST APIs and as
the broker's own user (the admin only inspects and sets quotas): the image is active; a
keypair; a server booted with "networks": "none" (compute 2.96), key_name and user_data
reaches ACTIVE; os-stop/os-start; resize m1.small -> m1.medium + confirmResize; a Cinder
volume attached through Nova's os-volume_attachments and detached; a Neutron security group
and rule; delete; a quota of 0 instances refuses a boot.

Usage: (. DIR/env && target/peers/openstack-real/bin/python tests/peers/openstack-real/smoke.py)
with DIR/env as printed by `scripts/peers start-openstack-real DIR`. Exits 1 on any failure."""
import base64
import os
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from keystoneauth1 import session
from keystoneauth1.identity import v3

ENV = {k[len("ALLIANCE_TEST_OSREAL_"):]: v for k, v in os.environ.items() if k.startswith("ALLIANCE_TEST_OSREAL_")}
REGION = ENV["REGION_NAME"]
NOVA = {"service_type": "compute", "interface": "public", "region_name": REGION}
CINDER = {"service_type": "block-storage", "interface": "public", "region_name": REGION}
NEUTRON = {"service_type": "network", "interface": "public", "region_name": REGION}
GLANCE = {"service_type": "image", "interface": "public", "region_name": REGION}
HEADERS = {"compute": {"OpenStack-API-Version": "compute 2.96"},
           "block-storage": {"OpenStack-API-Version": "volume 3.27"}}
T0 = time.time()
results = []


def sess(prefix=""):
    return session.Session(auth=v3.Password(
        auth_url=ENV["AUTH_URL"], username=ENV[prefix + "USERNAME"], password=ENV[prefix + "PASSWORD"],
        project_name=ENV[prefix + "PROJECT_NAME"], user_domain_name="Default", project_domain_name="Default"))


def step(name, ok, detail=""):
    results.append((name, ok))
    print(f"[{time.time() - T0:6.1f}s] {'PASS' if ok else 'FAIL'} {name} {detail}", flush=True)


def req(s, method, url, ep=None, ok=(200, 201, 202, 204), **kw):
    ep = ep or NOVA
    r = s.request(url, method, endpoint_filter=ep, headers=HEADERS.get(ep["service_type"], {}), raise_exc=False, **kw)
    if r.status_code not in ok:
        raise RuntimeError(f"{method} {url} -> {r.status_code} {r.text[:400]}")
    return r


def wait(fetch, want, timeout=120):
    state = None
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = fetch()
        if state == want or state in ("ERROR", "error", "error_attaching", "error_detaching"):
            break
        time.sleep(0.5)
    return state


def server_state(s, sid):
    r = req(s, "GET", f"/servers/{sid}", ok=(200, 404))
    return "DELETED" if r.status_code == 404 else r.json()["server"]["status"]


def volume_state(s, vid):
    r = req(s, "GET", f"/volumes/{vid}", ep=CINDER, ok=(200, 404))
    return "deleted" if r.status_code == 404 else r.json()["volume"]["status"]


def check(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - one failed check must not hide the others
        step(name, False, str(e))


broker, admin = sess(), sess("ADMIN_")
image, small, medium = ENV["IMAGE"], ENV["FLAVOR_SMALL"], ENV["FLAVOR_MEDIUM"]
project = ENV["PROJECT_ID"]
sid = None

r = req(broker, "GET", f"/v2/images/{image}", ep=GLANCE)
step("image active and visible to the broker", r.json()["status"] == "active", f"{image} size={r.json()['size']}")

key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
req(broker, "DELETE", "/os-keypairs/smoke", ok=(202, 204, 404))
r = req(broker, "POST", "/os-keypairs", json={"keypair": {"name": "smoke", "public_key": key}})
step("keypair create (ed25519)", bool(r.json()["keypair"]["fingerprint"]), r.json()["keypair"]["fingerprint"])


def boot():
    global sid
    user_data = base64.b64encode(b"#cloud-config\nhostname: smoke\n").decode()
    t = time.time()
    r = req(broker, "POST", "/servers", json={"server": {
        "name": "smoke", "imageRef": image, "flavorRef": small, "networks": "none",
        "key_name": "smoke", "user_data": user_data}})
    sid = r.json()["server"]["id"]
    st = wait(lambda: server_state(broker, sid), "ACTIVE")
    step("boot networks=none, key_name, user_data -> ACTIVE", st == "ACTIVE", f"{sid} in {time.time() - t:.1f}s")
    srv = req(admin, "GET", f"/servers/{sid}").json()["server"]
    step("user_data and key_name kept", srv.get("OS-EXT-SRV-ATTR:user_data") == user_data and srv["key_name"] == "smoke",
         f"host={srv.get('OS-EXT-SRV-ATTR:host')} flavor={srv['flavor']['original_name']}")


def power():
    req(broker, "POST", f"/servers/{sid}/action", json={"os-stop": None})
    st = wait(lambda: server_state(broker, sid), "SHUTOFF")
    step("os-stop -> SHUTOFF", st == "SHUTOFF", st)
    req(broker, "POST", f"/servers/{sid}/action", json={"os-start": None})
    st = wait(lambda: server_state(broker, sid), "ACTIVE")
    step("os-start -> ACTIVE", st == "ACTIVE", st)


def resize():
    req(broker, "POST", f"/servers/{sid}/action", json={"resize": {"flavorRef": medium}})
    st = wait(lambda: server_state(broker, sid), "VERIFY_RESIZE")
    if st == "VERIFY_RESIZE":
        req(broker, "POST", f"/servers/{sid}/action", json={"confirmResize": None})
        st = wait(lambda: server_state(broker, sid), "ACTIVE")
    flavor = req(broker, "GET", f"/servers/{sid}").json()["server"]["flavor"]["original_name"]
    step("resize m1.small -> m1.medium, confirmResize", st == "ACTIVE" and flavor == "m1.medium", f"{st} {flavor}")


def volume():
    t = time.time()
    vid = req(broker, "POST", "/volumes", ep=CINDER, json={"volume": {"size": 1, "name": "smoke"}}).json()["volume"]["id"]
    st = wait(lambda: volume_state(broker, vid), "available", 60)
    step("volume 1 GB -> available", st == "available", f"{vid} in {time.time() - t:.1f}s")
    req(broker, "POST", f"/servers/{sid}/os-volume_attachments", json={"volumeAttachment": {"volumeId": vid}})
    st = wait(lambda: volume_state(broker, vid), "in-use", 60)
    att = req(broker, "GET", f"/servers/{sid}/os-volume_attachments").json()["volumeAttachments"]
    step("attach through Nova -> in-use", st == "in-use" and len(att) == 1, f"{st} device={att[0]['device'] if att else None}")
    req(broker, "DELETE", f"/servers/{sid}/os-volume_attachments/{vid}")
    st = wait(lambda: volume_state(broker, vid), "available", 60)
    step("detach -> available", st == "available", st)
    req(broker, "DELETE", f"/volumes/{vid}", ep=CINDER)
    st = wait(lambda: volume_state(broker, vid), "deleted", 60)
    step("volume delete", st == "deleted", st)


def security_group():
    sg = req(broker, "POST", "/v2.0/security-groups", ep=NEUTRON,
             json={"security_group": {"name": "smoke", "description": "smoke"}}).json()["security_group"]
    rule = req(broker, "POST", "/v2.0/security-group-rules", ep=NEUTRON, json={"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}}).json()["security_group_rule"]
    listed = req(broker, "GET", f"/v2.0/security-groups/{sg['id']}", ep=NEUTRON).json()["security_group"]
    ports = req(broker, "GET", "/v2.0/ports", ep=NEUTRON).json()["ports"]
    step("Neutron security group + rule", any(x["id"] == rule["id"] for x in listed["security_group_rules"]),
         f"{sg['id']} rule={rule['id']} (GET /v2.0/ports: {len(ports)} ports)")
    req(broker, "DELETE", f"/v2.0/security-groups/{sg['id']}", ep=NEUTRON)


def quota():
    req(admin, "PUT", f"/os-quota-sets/{project}", json={"quota_set": {"instances": 0}})
    try:
        r = req(broker, "POST", "/servers", ok=(403,), json={"server": {
            "name": "over-quota", "imageRef": image, "flavorRef": small, "networks": "none"}})
        step("quota instances=0 -> 403 on boot", True, r.json().get("forbidden", {}).get("message", ""))
    finally:
        req(admin, "DELETE", f"/os-quota-sets/{project}")


def delete():
    req(broker, "DELETE", f"/servers/{sid}")
    st = wait(lambda: server_state(broker, sid), "DELETED")
    step("delete -> 404", st == "DELETED", st)
    req(broker, "DELETE", "/os-keypairs/smoke")


check("boot", boot)
if sid:
    check("power", power)
    check("resize", resize)
    check("volume", volume)
check("security group", security_group)
if sid:
    check("delete", delete)
check("quota", quota)  # with no server left: Nova refuses a quota below what is in use
bad = [n for n, ok in results if not ok]
print("ALL PASS" if not bad else f"FAILED: {bad}", f"({len(results)} checks, {time.time() - T0:.1f}s)")
sys.exit(1 if bad else 0)
