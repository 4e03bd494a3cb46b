"""A project-owned fake of the OpenStack APIs that cannot run on a test machine: Nova
(compute v2.1), Cinder (block-storage v3), and the read-only parts of Glance (images v2) and
Neutron (networks v2.0) that discovery needs.

Usable servers too: keypairs (`/os-keypairs`), `key_name`, `user_data` and
`security_groups` at boot, fixed addresses, the server actions (`os-stop`, `os-start`,
`reboot`, `resize` to `VERIFY_RESIZE` and `confirmResize`), volume attachments through Nova
(`os-volume_attachments`, the volume `in-use` with its attachment), and Neutron's security
groups and rules (409 on a duplicate rule), a server's port (`ports?device_id=`), and
floating IPs from the external network (created on a port, listed by port, deleted; Nova
then shows the address as `floating`).

It answers as the OpenStack API references document: status codes, bodies, microversion
headers (`OpenStack-API-Version`, `X-OpenStack-Nova-API-Version`, `Vary`), 406 for an
unsupported microversion, servers BUILD -> ACTIVE (or ERROR for the image named
`error-image`), deletes that pass through `task_state: deleting`, Nova's quota refusal (403
`forbidden`, "Quota exceeded for instances") and Cinder's (413 `overLimit` with
`Retry-After`). Tokens are validated against the real Keystone by keystonemiddleware's
auth_token, exactly as a real Nova does; state is kept per project.

Served by gunicorn (one process, threads) from `scripts/peers start-openstack`.
Knobs (environment): ALLIANCE_FAKE_KEYSTONE, ALLIANCE_FAKE_ADMIN_PASSWORD,
ALLIANCE_FAKE_BUILD_SECONDS (default 0.5), ALLIANCE_FAKE_MAX_INSTANCES (default 25),
ALLIANCE_FAKE_MAX_GIGABYTES (default 200).
"""
import json
import os
import re
import threading
import time
import uuid
from urllib.parse import parse_qs

from keystonemiddleware import auth_token

BUILD_SECONDS = float(os.environ.get("ALLIANCE_FAKE_BUILD_SECONDS", "0.5"))
DELETE_SECONDS = 0.3
MAX_INSTANCES = int(os.environ.get("ALLIANCE_FAKE_MAX_INSTANCES", "25"))
MAX_GIGABYTES = int(os.environ.get("ALLIANCE_FAKE_MAX_GIGABYTES", "200"))
NOVA_MIN, NOVA_MAX = (2, 1), (2, 96)
CINDER_MIN, CINDER_MAX = (3, 0), (3, 71)

FLAVORS = [
    {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
    {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
    {"id": "3", "name": "m1.medium", "ram": 4096, "vcpus": 2, "disk": 40},
]
IMAGES = [
    {"id": "5b1c6a4e-0000-4000-8000-000000000001", "name": "debian-12", "status": "active"},
    {"id": "5b1c6a4e-0000-4000-8000-000000000002", "name": "error-image", "status": "active"},
]
NETWORKS = [
    {"id": "9f0e7d6c-0000-4000-8000-000000000001", "name": "public", "router:external": True, "status": "ACTIVE"},
    {"id": "9f0e7d6c-0000-4000-8000-000000000002", "name": "private", "router:external": False, "status": "ACTIVE"},
]

LOCK = threading.Lock()
SERVERS = {}  # project -> id -> server
VOLUMES = {}  # project -> id -> volume
KEYPAIRS = {}  # project -> name -> keypair
GROUPS = {}  # project -> id -> security group (with its rules)
FLOATING = {}  # project -> id -> floating IP


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def response(start, status, body=None, headers=()):
    reasons = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
               404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
               413: "Request Entity Too Large"}
    payload = b"" if body is None else json.dumps(body).encode()
    hdrs = list(headers)
    if body is not None:
        hdrs.append(("Content-Type", "application/json"))
    hdrs.append(("Content-Length", str(len(payload))))
    start(f"{status} {reasons.get(status, 'Status')}", hdrs)
    return [payload]


def fault(start, status, kind, message, headers=()):
    return response(start, status, {kind: {"code": status, "message": message}}, headers)


def item(start, path, method, collection, items, label, vh):
    """For a path `/{collection}/ID`: (the item, the answer already due) where that answer is
    404 for an unknown ID, the item itself for a GET, None for any other method (the caller's
    to answer). None for any other path."""
    m = re.fullmatch(rf"/{collection}/([^/]+)", path)
    if not m:
        return None
    found = items.get(m.group(1))
    if found is None:
        return None, fault(start, 404, "itemNotFound", f"{label} {m.group(1)} could not be found.", vh)
    if method == "GET":
        return found, response(start, 200, {collection[:-1]: public(found)}, vh)
    return found, None


def microversion(environ, service, legacy, lo, hi):
    """The requested microversion: (version, error). `latest` means the maximum."""
    raw = None
    header = environ.get("HTTP_OPENSTACK_API_VERSION", "")
    for part in header.split(","):
        words = part.strip().split()
        if len(words) == 2 and words[0] == service:
            raw = words[1]
    if raw is None and legacy:
        raw = environ.get(legacy)
    if raw is None:
        return lo, None
    if raw == "latest":
        return hi, None
    m = re.fullmatch(r"(\d+)\.(\d+)", raw)
    if not m:
        return None, f"Invalid microversion {raw!r}"
    v = (int(m.group(1)), int(m.group(2)))
    if v < lo or v > hi:
        return None, f"Version {raw} is not supported by the API. Minimum is {lo[0]}.{lo[1]} and maximum is {hi[0]}.{hi[1]}."
    return v, None


def version_headers(service, v, legacy_name=None):
    text = f"{v[0]}.{v[1]}"
    hdrs = [("OpenStack-API-Version", f"{service} {text}"), ("Vary", "OpenStack-API-Version")]
    if legacy_name:
        hdrs.append((legacy_name, text))
        hdrs[1] = ("Vary", f"OpenStack-API-Version, {legacy_name}")
    return hdrs


def read_json(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return json.loads(environ["wsgi.input"].read(length) or b"null")
    except (ValueError, json.JSONDecodeError):
        return None


def page(environ, items):
    """`limit` and `marker` (the last id of the previous page), as Nova and Cinder page."""
    q = parse_qs(environ.get("QUERY_STRING", ""))
    if "marker" in q:
        ids = [x["id"] for x in items]
        if q["marker"][0] not in ids:
            return None
        items = items[ids.index(q["marker"][0]) + 1:]
    try:
        limit = min(int(q.get("limit", ["1000"])[0]), 1000)
    except ValueError:
        return None
    return items[:max(limit, 0)]


def settle_server(s):
    t = time.time() - s["_created"]
    if s["status"] == "BUILD" and t >= BUILD_SECONDS:
        if s["image"]["id"] == IMAGES[1]["id"]:
            s["status"] = "ERROR"
            s["fault"] = {"code": 500, "message": "No valid host was found. There are not enough hosts available.",
                          "created": now_iso()}
        else:
            s["status"] = "ACTIVE"
            s["OS-EXT-STS:vm_state"] = "active"
    s["OS-EXT-STS:task_state"] = "deleting" if s.get("_deleted_at") else None


def public(s):
    return {k: v for k, v in s.items() if not k.startswith("_")}


def nova(environ, start, project, path, method):
    v, err = microversion(environ, "compute", "HTTP_X_OPENSTACK_NOVA_API_VERSION", NOVA_MIN, NOVA_MAX)
    if err:
        return fault(start, 406, "computeFault", err)
    vh = version_headers("compute", v, "X-OpenStack-Nova-API-Version")
    with LOCK:
        servers = SERVERS.setdefault(project, {})
        for sid in [k for k, s in servers.items() if s.get("_deleted_at") and time.time() - s["_deleted_at"] > DELETE_SECONDS]:
            del servers[sid]
        for s in servers.values():
            settle_server(s)
        if path == "/os-keypairs" and method == "POST":
            kp = (read_json(environ) or {}).get("keypair") or {}
            pairs = KEYPAIRS.setdefault(project, {})
            if not kp.get("name") or not str(kp.get("public_key", "")).startswith(("ssh-", "ecdsa-")):
                return fault(start, 400, "badRequest", "Keypair data is invalid", vh)
            if kp["name"] in pairs:
                return fault(start, 409, "conflictingRequest", f"Key pair '{kp['name']}' already exists.", vh)
            pairs[kp["name"]] = {"name": kp["name"], "public_key": kp["public_key"], "type": "ssh"}
            return response(start, 200, {"keypair": pairs[kp["name"]]}, vh)
        m = re.fullmatch(r"/os-keypairs/([^/]+)", path)
        if m and method == "GET":
            kp = KEYPAIRS.setdefault(project, {}).get(m.group(1))
            return response(start, 200, {"keypair": kp}, vh) if kp else fault(start, 404, "itemNotFound", "Keypair not found", vh)
        m = re.fullmatch(r"/servers/([^/]+)/action", path)
        if m and method == "POST":
            s = servers.get(m.group(1))
            if s is None or s.get("_deleted_at"):
                return fault(start, 404, "itemNotFound", "Instance could not be found.", vh)
            return server_action(start, s, read_json(environ) or {}, vh)
        m = re.fullmatch(r"/servers/([^/]+)/os-volume_attachments(?:/([^/]+))?", path)
        if m:
            s = servers.get(m.group(1))
            if s is None or s.get("_deleted_at"):
                return fault(start, 404, "itemNotFound", "Instance could not be found.", vh)
            return attachment(start, environ, project, s, m.group(2), method, vh)
        if path in ("/flavors", "/flavors/detail") and method == "GET":
            detail = path.endswith("detail")
            return response(start, 200, {"flavors": [f if detail else {"id": f["id"], "name": f["name"]} for f in FLAVORS]}, vh)
        if path == "/servers" and method == "POST":
            body = read_json(environ)
            server = (body or {}).get("server") if isinstance(body, dict) else None
            if not isinstance(server, dict) or not server.get("name") or not server.get("flavorRef"):
                return fault(start, 400, "badRequest", "Invalid input for field/attribute server.", vh)
            if "tags" in server and v < (2, 52):
                return fault(start, 400, "badRequest", "Additional properties are not allowed ('tags' was unexpected)", vh)
            if v >= (2, 37) and "networks" not in server:
                return fault(start, 400, "badRequest", "Invalid input for field/attribute server. 'networks' is a required property", vh)
            flavor = next((f for f in FLAVORS if f["id"] == str(server["flavorRef"])), None)
            if flavor is None:
                return fault(start, 400, "badRequest", f"Flavor {server['flavorRef']} could not be found.", vh)
            image = next((i for i in IMAGES if i["id"] == server.get("imageRef")), None)
            if image is None:
                return fault(start, 400, "badRequest", f"Image {server.get('imageRef')} could not be found.", vh)
            tags = server.get("tags") or []
            if any(len(t) > 60 or "," in t or "/" in t for t in tags):
                return fault(start, 400, "badRequest", "Invalid input for field/attribute tags.", vh)
            live = [s for s in servers.values() if not s.get("_deleted_at")]
            if len(live) >= MAX_INSTANCES:
                return fault(start, 403, "forbidden",
                             f"Quota exceeded for instances: Requested 1, but already used {len(live)} of {MAX_INSTANCES} instances", vh)
            key_name = server.get("key_name")
            if key_name and key_name not in KEYPAIRS.setdefault(project, {}):
                return fault(start, 400, "badRequest", "Invalid key_name provided.", vh)
            sid = str(uuid.uuid4())
            servers[sid] = {
                "key_name": key_name, "OS-EXT-SRV-ATTR:user_data": server.get("user_data"),
                "security_groups": server.get("security_groups") or [{"name": "default"}],
                "addresses": {} if server.get("networks") == "none" else {"private": [
                    {"addr": f"10.0.{len(servers) // 250}.{len(servers) % 250 + 2}", "version": 4, "OS-EXT-IPS:type": "fixed"}]},
                "id": sid, "name": server["name"], "status": "BUILD", "tenant_id": project,
                "user_id": environ.get("HTTP_X_USER_ID"), "metadata": dict(server.get("metadata") or {}),
                "tags": list(tags), "flavor": {"id": flavor["id"]}, "image": {"id": image["id"]},
                "created": now_iso(), "updated": now_iso(), "OS-EXT-STS:vm_state": "building",
                "OS-EXT-STS:task_state": "scheduling", "links": [{"rel": "self", "href": f"/servers/{sid}"}],
                "_created": time.time(),
            }
            return response(start, 202, {"server": {
                "id": sid, "links": servers[sid]["links"], "OS-DCF:diskConfig": "MANUAL",
                "security_groups": [{"name": "default"}], "adminPass": uuid.uuid4().hex[:12]}},
                vh + [("Location", f"/servers/{sid}")])
        if path in ("/servers", "/servers/detail") and method == "GET":
            q = parse_qs(environ.get("QUERY_STRING", ""))
            wanted = [t for t in ",".join(q.get("tags", [])).split(",") if t]
            found = page(environ, [s for s in servers.values() if all(t in s["tags"] for t in wanted)])
            if found is None:
                return fault(start, 400, "badRequest", "marker not found or invalid limit", vh)
            if path.endswith("detail"):
                return response(start, 200, {"servers": [public(s) for s in found]}, vh)
            return response(start, 200, {"servers": [{"id": s["id"], "name": s["name"], "links": s["links"]} for s in found]}, vh)
        found = item(start, path, method, "servers", servers, "Instance", vh)
        if found:
            s, answer = found
            if answer is not None:
                return answer
            if method == "DELETE":
                s.setdefault("_deleted_at", time.time())
                return response(start, 204, None, vh)
            return fault(start, 405, "computeFault", "Method not allowed", vh)
    return fault(start, 404, "itemNotFound", "The resource could not be found.", vh)


def server_action(start, s, body, vh):
    """os-stop, os-start, reboot, resize and confirmResize, as Nova answers them: 202, or
    409 when the server is not in a state that allows the action."""
    state = s["status"]
    if "os-stop" in body and state == "ACTIVE":
        s["status"] = "SHUTOFF"
    elif "os-start" in body and state == "SHUTOFF":
        s["status"] = "ACTIVE"
    elif "reboot" in body and state == "ACTIVE":
        s["_reboots"] = s.get("_reboots", 0) + 1
    elif "resize" in body and state in ("ACTIVE", "SHUTOFF"):
        flavor = next((f for f in FLAVORS if f["id"] == str((body["resize"] or {}).get("flavorRef"))), None)
        if flavor is None:
            return fault(start, 400, "badRequest", "Unable to find flavor", vh)
        if flavor["id"] == s["flavor"]["id"]:
            return fault(start, 400, "badRequest", "The provided flavor is the same as the current one", vh)
        s["_before_resize"] = state
        s["flavor"] = {"id": flavor["id"]}
        s["status"] = "VERIFY_RESIZE"
    elif "confirmResize" in body and state == "VERIFY_RESIZE":
        s["status"] = s.pop("_before_resize", "ACTIVE")
    else:
        return fault(start, 409, "conflictingRequest", f"Cannot '{next(iter(body), '?')}' instance while it is in vm_state {state.lower()}", vh)
    s["updated"] = now_iso()
    return response(start, 202, None, vh)


def attachment(start, environ, project, s, volume_id, method, vh):
    """Nova's os-volume_attachments: list, attach (the Cinder volume in-use, with its
    attachment) and detach."""
    volumes = VOLUMES.setdefault(project, {})
    if method == "POST" and volume_id is None:
        wanted = ((read_json(environ) or {}).get("volumeAttachment") or {}).get("volumeId")
        vol = volumes.get(wanted)
        if vol is None:
            return fault(start, 404, "itemNotFound", f"Volume {wanted} could not be found.", vh)
        if vol["status"] != "available":
            return fault(start, 400, "badRequest", f"Invalid volume: volume {wanted} status must be available", vh)
        used = [x for x in volumes.values() for a in x["attachments"] if a["server_id"] == s["id"]]
        device = f"/dev/vd{chr(ord('b') + len(used))}"
        att = {"id": wanted, "volume_id": wanted, "server_id": s["id"], "device": device,
               "attachment_id": str(uuid.uuid4())}
        vol["attachments"] = [att]
        vol["status"] = "in-use"
        return response(start, 200, {"volumeAttachment": {"id": wanted, "volumeId": wanted, "serverId": s["id"],
                                                          "device": device}}, vh)
    if method == "GET" and volume_id is None:
        listed = [{"id": a["volume_id"], "volumeId": a["volume_id"], "serverId": s["id"], "device": a["device"]}
                  for x in volumes.values() for a in x["attachments"] if a["server_id"] == s["id"]]
        return response(start, 200, {"volumeAttachments": listed}, vh)
    if method == "DELETE" and volume_id is not None:
        vol = volumes.get(volume_id)
        if vol is None or not any(a["server_id"] == s["id"] for a in vol["attachments"]):
            return fault(start, 404, "itemNotFound", f"volume_id not found: {volume_id}", vh)
        vol["attachments"] = []
        vol["status"] = "available"
        return response(start, 202, None, vh)
    return fault(start, 405, "computeFault", "Method not allowed", vh)


def neutron_groups(environ, start, project, path, method):
    """Neutron's security groups and rules: list by name, create, add rules (409 when the
    same rule exists), delete (409 while a server of the project is in the group)."""
    with LOCK:
        groups = GROUPS.setdefault(project, {})
        if path == "/network/v2.0/security-groups" and method == "GET":
            name = parse_qs(environ.get("QUERY_STRING", "")).get("name", [None])[0]
            found = [g for g in groups.values() if name is None or g["name"] == name]
            return response(start, 200, {"security_groups": found})
        if path == "/network/v2.0/security-groups" and method == "POST":
            body = (read_json(environ) or {}).get("security_group") or {}
            if not body.get("name"):
                return fault(start, 400, "badRequest", "Invalid input for name.")
            gid = str(uuid.uuid4())
            groups[gid] = {"id": gid, "name": body["name"], "description": body.get("description", ""),
                           "project_id": project, "security_group_rules": []}
            return response(start, 201, {"security_group": groups[gid]})
        gid = path.removeprefix("/network/v2.0/security-groups/")
        if path.startswith("/network/v2.0/security-groups/") and method == "DELETE":
            group = groups.get(gid)
            if group is None:
                return fault(start, 404, "itemNotFound", "Security group could not be found.")
            if any({"name": group["name"]} in (s.get("security_groups") or [])
                   for s in SERVERS.get(project, {}).values()):
                return fault(start, 409, "conflict", f"Security Group {gid} in use.")
            del groups[gid]
            return response(start, 204, None)
        if path == "/network/v2.0/security-group-rules" and method == "POST":
            rule = (read_json(environ) or {}).get("security_group_rule") or {}
            group = groups.get(rule.get("security_group_id"))
            if group is None:
                return fault(start, 404, "itemNotFound", "Security group could not be found.")
            keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix")
            if any(all(r.get(k) == rule.get(k) for k in keys) for r in group["security_group_rules"]):
                return fault(start, 409, "conflict", "Security group rule already exists.")
            stored = {k: rule.get(k) for k in keys}
            stored.update(id=str(uuid.uuid4()), security_group_id=group["id"])
            group["security_group_rules"].append(stored)
            return response(start, 201, {"security_group_rule": stored})
    return fault(start, 404, "itemNotFound", "The resource could not be found.")


def neutron_floating(environ, start, project, path, method):
    """A server's one port (`port-<server id>`) and floating IPs on it."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    with LOCK:
        servers = SERVERS.setdefault(project, {})
        floating = FLOATING.setdefault(project, {})

        def fixed(sid):
            s = servers.get(sid)
            return [a for a in (s or {}).get("addresses", {}).get("private", []) if a["OS-EXT-IPS:type"] == "fixed"]

        if path == "/network/v2.0/ports" and method == "GET":
            sid = query.get("device_id", [None])[0]
            ports = [{"id": f"port-{sid}", "device_id": sid, "fixed_ips": [{"ip_address": a["addr"]} for a in fixed(sid)]}
                     ] if sid and fixed(sid) else []
            return response(start, 200, {"ports": ports})
        if path == "/network/v2.0/floatingips" and method == "GET":
            port = query.get("port_id", [None])[0]
            return response(start, 200, {"floatingips": [f for f in floating.values() if port is None or f["port_id"] == port]})
        if path == "/network/v2.0/floatingips" and method == "POST":
            body = (read_json(environ) or {}).get("floatingip") or {}
            if body.get("floating_network_id") != NETWORKS[0]["id"]:
                return fault(start, 400, "badRequest", "Network is not external.")
            sid = str(body.get("port_id", "")).removeprefix("port-")
            if not fixed(sid):
                return fault(start, 404, "itemNotFound", "Port could not be found.")
            fid = str(uuid.uuid4())
            address = f"203.0.113.{len(floating) % 250 + 2}"
            floating[fid] = {"id": fid, "floating_ip_address": address, "port_id": body["port_id"],
                             "floating_network_id": body["floating_network_id"], "status": "ACTIVE",
                             "description": body.get("description", "")}
            servers[sid]["addresses"]["private"].append({"addr": address, "version": 4, "OS-EXT-IPS:type": "floating"})
            return response(start, 201, {"floatingip": floating[fid]})
        m = re.fullmatch(r"/network/v2.0/floatingips/([^/]+)", path)
        if m and method == "DELETE":
            f = floating.pop(m.group(1), None)
            if f is None:
                return fault(start, 404, "itemNotFound", "Floating IP could not be found.")
            s = servers.get(f["port_id"].removeprefix("port-"))
            if s:
                s["addresses"]["private"] = [a for a in s["addresses"]["private"] if a["addr"] != f["floating_ip_address"]]
            return response(start, 204, None)
    return fault(start, 404, "itemNotFound", "The resource could not be found.")


def cinder(environ, start, project, path, method):
    v, err = microversion(environ, "volume", None, CINDER_MIN, CINDER_MAX)
    if err:
        return fault(start, 406, "computeFault", err)
    vh = version_headers("volume", v)
    m = re.fullmatch(r"/([^/]+)(/.*)", path)
    if not m or m.group(1) != project:
        return fault(start, 404, "itemNotFound", "The resource could not be found.", vh)
    path = m.group(2)
    with LOCK:
        volumes = VOLUMES.setdefault(project, {})
        for vid in [k for k, x in volumes.items() if x["status"] == "deleting" and time.time() - x["_deleted_at"] > DELETE_SECONDS]:
            del volumes[vid]
        for x in volumes.values():
            if x["status"] == "creating" and time.time() - x["_created"] >= BUILD_SECONDS:
                x["status"] = "available"
        if path == "/volumes" and method == "POST":
            body = read_json(environ)
            vol = (body or {}).get("volume") if isinstance(body, dict) else None
            if not isinstance(vol, dict) or not isinstance(vol.get("size"), int) or vol["size"] < 1:
                return fault(start, 400, "badRequest", "Invalid input for field/attribute size.", vh)
            used = sum(x["size"] for x in volumes.values() if x["status"] != "deleting")
            if used + vol["size"] > MAX_GIGABYTES:
                return fault(start, 413, "overLimit",
                             f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. "
                             f"Requested {vol['size']}G, quota is {MAX_GIGABYTES}G and {used}G has been consumed.",
                             vh + [("Retry-After", "30")])
            vid = str(uuid.uuid4())
            volumes[vid] = {
                "id": vid, "name": vol.get("name"), "size": vol["size"], "status": "creating",
                "metadata": dict(vol.get("metadata") or {}), "availability_zone": "nova", "bootable": "false",
                "created_at": now_iso(), "volume_type": "__DEFAULT__", "attachments": [],
                "links": [{"rel": "self", "href": f"/volumes/{vid}"}], "_created": time.time(),
            }
            return response(start, 202, {"volume": public(volumes[vid])}, vh)
        if path in ("/volumes", "/volumes/detail") and method == "GET":
            q = parse_qs(environ.get("QUERY_STRING", ""))
            wanted = {}
            if "metadata" in q:
                try:
                    wanted = json.loads(q["metadata"][0])
                except json.JSONDecodeError:
                    return fault(start, 400, "badRequest", "Invalid metadata filter.", vh)
            found = page(environ, [x for x in volumes.values() if all(x["metadata"].get(k) == val for k, val in wanted.items())])
            if found is None:
                return fault(start, 400, "badRequest", "marker not found or invalid limit", vh)
            return response(start, 200, {"volumes": [public(x) for x in found]}, vh)
        found = item(start, path, method, "volumes", volumes, "Volume", vh)
        if found:
            x, answer = found
            if answer is not None:
                return answer
            if method == "DELETE":
                if x["status"] not in ("available", "error", "deleting"):
                    return fault(start, 400, "badRequest", "Invalid volume: Volume status must be available or error.", vh)
                x["status"] = "deleting"
                x.setdefault("_deleted_at", time.time())
                return response(start, 202, None, vh)
    return fault(start, 404, "itemNotFound", "The resource could not be found.", vh)


def api(environ, start):
    # keystonemiddleware has validated the token: these headers are its verdict.
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        return response(start, 401, {"error": {"code": 401, "message": "The request you have made requires authentication."}},
                        [("WWW-Authenticate", "Keystone uri='%s'" % os.environ.get("ALLIANCE_FAKE_KEYSTONE", ""))])
    project = environ.get("HTTP_X_PROJECT_ID")
    path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
    if path.startswith("/compute/v2.1"):
        return nova(environ, start, project, path[len("/compute/v2.1"):] or "/", method)
    if path.startswith("/volume/v3"):
        return cinder(environ, start, project, path[len("/volume/v3"):] or "/", method)
    if path == "/image/v2/images" and method == "GET":
        return response(start, 200, {"images": IMAGES})
    if path == "/network/v2.0/networks" and method == "GET":
        return response(start, 200, {"networks": NETWORKS})
    if path.startswith("/network/v2.0/security-group"):
        return neutron_groups(environ, start, project, path, method)
    if path.startswith(("/network/v2.0/ports", "/network/v2.0/floatingips")):
        return neutron_floating(environ, start, project, path, method)
    return fault(start, 404, "itemNotFound", "The resource could not be found.")


_authenticated = None


def application(environ, start):
    global _authenticated
    if environ.get("PATH_INFO") == "/":
        return response(start, 200, {"fake": "nova+cinder+glance+neutron"})
    if _authenticated is None:
        keystone = os.environ["ALLIANCE_FAKE_KEYSTONE"]
        _authenticated = auth_token.AuthProtocol(api, {
            "www_authenticate_uri": keystone, "auth_url": keystone, "auth_type": "password",
            "username": "admin", "password": os.environ["ALLIANCE_FAKE_ADMIN_PASSWORD"],
            "project_name": "admin", "user_domain_id": "default", "project_domain_id": "default",
            "delay_auth_decision": True, "log_name": "openstack-fake",
        })
    return _authenticated(environ, start)
