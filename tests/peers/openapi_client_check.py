"""Drives the broker through a client that openapi-python-client generated from the
broker's own /openapi.json (tests/e2e/openapi.rs): creates three instances, waits for their
operations, and pages through them two at a time with the generated `list_instances`.

    python openapi_client_check.py PACKAGE_DIR BASE_URL      (token in ALLIANCE_CLIENT_TOKEN)

PACKAGE_DIR is the generated package (`--meta none`); it is imported by its directory name.
Exits non-zero with a message on the first thing that does not hold.
"""

import importlib
import os
import sys
import time
import uuid


def main() -> None:
    package_dir, base_url = sys.argv[1], sys.argv[2]
    token = os.environ["ALLIANCE_CLIENT_TOKEN"]
    package_dir = os.path.abspath(package_dir)
    sys.path.insert(0, os.path.dirname(package_dir))
    name = os.path.basename(package_dir)
    client_module = importlib.import_module(name)
    create_instance = importlib.import_module(f"{name}.api.instances.create_instance")
    list_instances = importlib.import_module(f"{name}.api.instances.list_instances")
    get_operation = importlib.import_module(f"{name}.api.operations.get_operation")
    models = importlib.import_module(f"{name}.models")
    types = importlib.import_module(f"{name}.types")

    # Undocumented statuses raise instead of parsing to None.
    client = client_module.AuthenticatedClient(
        base_url=base_url, token=token, raise_on_unexpected_status=True, timeout=30.0
    )

    created = []
    for i in range(3):
        answer = create_instance.sync_detailed(
            client=client,
            body=models.CreateInstance(
                name=f"generated-{i}", size="small", image="debian-12", jurisdiction="FR"
            ),
            idempotency_key=str(uuid.uuid4()),
        )
        check(answer.status_code == 202, f"create {i}: {answer.status_code} {answer.content!r}")
        operation = answer.parsed
        check(isinstance(operation, models.OperationView), f"create {i} parsed as {operation!r}")
        created.append(operation)

    deadline = time.monotonic() + 60
    for operation in created:
        while True:
            current = get_operation.sync(operation.id, client=client)
            check(isinstance(current, models.OperationView), f"operation {operation.id}: {current!r}")
            if current.status == "succeeded":
                break
            check(current.status != "failed", f"operation {operation.id} failed: {current.error!r}")
            check(time.monotonic() < deadline, f"operation {operation.id} still {current.status}")
            time.sleep(0.05)

    first = list_instances.sync(client=client, limit=2)
    check(first is not None, "first page did not parse")
    check(len(first.items) == 2, f"first page has {len(first.items)} items, not 2")
    token_next = first.next_page_token
    check(
        isinstance(token_next, str) and token_next != "",
        f"first page's next_page_token is {token_next!r}",
    )
    second = list_instances.sync(client=client, limit=2, page_token=token_next)
    check(second is not None, "second page did not parse")
    check(len(second.items) == 1, f"second page has {len(second.items)} items, not 1")
    check(
        second.next_page_token is None or isinstance(second.next_page_token, types.Unset),
        f"the last page's next_page_token is {second.next_page_token!r}",
    )
    seen = sorted(item.id for item in first.items + second.items)
    expected = sorted(operation.resource_id for operation in created)
    check(seen == expected, f"the pages hold {seen}, created {expected}")
    for item in first.items + second.items:
        check(item.tenant == "acme", f"{item.id} belongs to {item.tenant}")
        check(item.status == "active", f"{item.id} is {item.status}")
    print(f"ok: 3 instances created, pages of 2 and 1 ({', '.join(seen)})")


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"openapi_client_check: {message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
