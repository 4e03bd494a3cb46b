"""The console in a real browser (Playwright driving Debian's Chromium), against a running
broker that `tests/e2e/console.rs` started and provisioned.

    python console_check.py BROKER_URL EXPECTED_JSON SCREENSHOT_DIR

EXPECTED_JSON holds what the API says: {"acme": {"FR": n, ...}, "santeplus": {...},
"acme_resource": "bkt-…"}. Every check that fails is printed; the exit status is the number
of failures (0: all passed). Screenshots of each view go to SCREENSHOT_DIR (docs/console when the
test runs with ALLIANCE_UPDATE_SCREENSHOTS=1, else a temporary directory).
"""
import json
import re
import sys

from playwright.sync_api import sync_playwright

url, expected_file, shots = sys.argv[1], sys.argv[2], sys.argv[3]
expected = json.load(open(expected_file))
failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


def sign_in(browser, tenant, role):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/console")
    check(page.url.endswith("/console/login"), f"{role}@{tenant}: an anonymous visitor is sent to sign in")
    page.click("text=Development sign-in")
    page.select_option("select[name=tenant]", tenant)
    page.select_option("select[name=role]", role)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console(/members|/reconciliations)?$"))
    cookie = [c for c in context.cookies() if c["name"] == "alliance_session"]
    check(len(cookie) == 1 and cookie[0]["httpOnly"] and cookie[0]["sameSite"] == "Strict",
          f"{role}@{tenant}: the session cookie is HttpOnly and SameSite=Strict")
    check(page.evaluate("document.cookie").find("alliance_session") < 0,
          f"{role}@{tenant}: scripts cannot read the session")
    return context, page


def map_counts(page):
    return {
        p.get_attribute("data-jurisdiction"): int(p.get_attribute("data-resources"))
        for p in page.query_selector_all("svg.map path[data-jurisdiction]")
    }


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

    # A tenant signs in and sees where its data lives: the map agrees with the API.
    acme, page = sign_in(browser, "acme", "tenant-admin")
    answer = page.goto(f"{url}/console")
    csp = answer.headers.get("content-security-policy", "")
    check("script-src 'self'" in csp and "unsafe-inline" not in csp, f"a strict CSP on every page: {csp}")
    counts = map_counts(page)
    for country, n in expected["acme"].items():
        check(counts.get(country) == n, f"acme's map shows {n} resources in {country} (shows {counts.get(country)})")
    held = {c for c, n in counts.items() if n > 0}
    check(held == {c for c, n in expected["acme"].items() if n > 0}, f"acme's map fills exactly {sorted(held)}")
    check(page.get_attribute("path[data-jurisdiction=DE]", "class") == "country allowed",
          "an allowed but empty country is marked apart")
    check(page.get_attribute("path[data-jurisdiction=IT]", "class") == "country",
          "a country outside the policy is plain")
    page.screenshot(path=f"{shots}/map.png", full_page=True)

    # The resources, filtered without a reload of the form by hand, and one resource's reasons.
    page.goto(f"{url}/console/resources")
    rows = page.query_selector_all("table.resources tbody tr")
    check(len(rows) == sum(expected["acme"].values()), f"acme's resources are listed ({len(rows)})")
    page.select_option("select[name=country]", "BE")
    page.wait_for_url(re.compile(r".*country=BE.*"))
    countries = [r.inner_text() for r in page.query_selector_all("table.resources tbody tr td:nth-child(3)")]
    check(countries and all(c == "BE" for c in countries), f"the country filter keeps BE only: {countries}")
    page.screenshot(path=f"{shots}/resources.png", full_page=True)
    page.goto(f"{url}/console/resources/{expected['acme_resource']}")
    reasons = page.query_selector_all("ol.reasons li")
    check(len(reasons) > 0, "a resource's page says why it is where it is")
    check(len(page.query_selector_all("table.candidates tbody tr")) >= 3, "and why not at the other members")
    page.screenshot(path=f"{shots}/resource.png", full_page=True)

    # The month's usage by country.
    page.goto(f"{url}/console")
    check(page.query_selector("table.usage tbody tr[data-jurisdiction=BE]") is not None, "the month's usage is shown by country")

    # SSH keys: added, listed with their fingerprint, deleted.
    page.goto(f"{url}/console/ssh-keys")
    page.fill("input[name=name]", "laptop")
    page.fill("textarea[name=public_key]", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@laptop")
    page.click("form[action='/console/ssh-keys'] button")
    page.wait_for_url(re.compile(r".*/console/ssh-keys$"))
    fingerprint = page.inner_text("tr[data-key=laptop] code") if page.query_selector("tr[data-key=laptop]") else ""
    check(fingerprint.startswith("SHA256:"), f"an SSH key is added, with its fingerprint ({fingerprint})")
    page.screenshot(path=f"{shots}/ssh-keys.png", full_page=True)
    page.click("tr[data-key=laptop] button")
    page.wait_for_url(re.compile(r".*/console/ssh-keys$"))
    check(page.query_selector("tr[data-key=laptop]") is None, "and deleted")

    # An instance stopped from its page; the operation succeeds and the instance is stopped.
    page.goto(f"{url}/console/resources/{expected['acme_resource']}")
    page.click("button[value=stop]")
    page.wait_for_url(re.compile(r".*/console/operations/op-.*"))
    for _ in range(100):
        if page.get_attribute("#operation-status", "data-status") == "succeeded":
            break
        page.wait_for_timeout(200)
    page.goto(f"{url}/console/resources/{expected['acme_resource']}")
    check(page.inner_text("[data-field=power]") == "stopped", "an instance stopped from the console is stopped")

    # A bucket's object through URLs the broker signs: the bytes go straight to the member.
    import urllib.request
    def signed(method, obj):
        page.goto(f"{url}/console/resources/{expected['acme_bucket']}")
        page.fill("input[name=object]", obj)
        page.select_option("select[name=method]", method)
        page.click("form[action$='/urls'] button")
        return page.input_value("textarea[data-field=url]")
    put = signed("PUT", "hello.txt")
    urllib.request.urlopen(urllib.request.Request(put, data=b"bonjour", method="PUT"), timeout=10).read()
    page.screenshot(path=f"{shots}/object-url.png", full_page=True)
    got = urllib.request.urlopen(signed("GET", "hello.txt"), timeout=10).read()
    check(got == b"bonjour" and not put.startswith(url), "an object put and got through signed URLs, at the member")

    # A bucket in BE through the form; its operation reaches succeeded without a reload.
    page.goto(f"{url}/console/buckets/new")
    options = [o.get_attribute("value") for o in page.query_selector_all("select[name=country] option") if o.get_attribute("value")]
    check(sorted(options) == sorted(expected["acme_allowed"]), f"the country picker offers only allowed jurisdictions: {options}")
    page.select_option("select[name=country]", "BE")
    page.wait_for_url(re.compile(r".*country=BE.*"))
    eligible = page.get_attribute("tr[data-member=belgacom-be]", "data-eligible")
    check(eligible == "true", "picking BE shows belgacom-be eligible")
    page.fill("input[name=name]", "from-the-console")
    page.screenshot(path=f"{shots}/create.png", full_page=True)
    page.click("text=Create bucket in BE")
    page.wait_for_url(re.compile(r".*/console/operations/op-.*"))
    operation_url = page.url
    # Polled from here (wait_for_function would evaluate a string, which the CSP forbids).
    for _ in range(100):
        if page.get_attribute("#operation-status", "data-status") == "succeeded":
            break
        page.wait_for_timeout(200)
    check(page.get_attribute("#operation-status", "data-status") == "succeeded", "the operation reached succeeded")
    check(page.url == operation_url, "the operation succeeded on the page, without a reload")
    page.screenshot(path=f"{shots}/operation.png", full_page=True)

    # An instance through the same form, with a size, an image and the tenant's choice.
    page.goto(f"{url}/console/new?type=instance&country=FR")
    page.fill("input[name=name]", "console-vm")
    page.select_option("select[name=size]", "small")
    page.select_option("select[name=image]", "debian-12")
    page.click("text=Create instance in FR")
    page.wait_for_url(re.compile(r".*/console/operations/op-.*"))
    for _ in range(100):
        if page.get_attribute("#operation-status", "data-status") == "succeeded":
            break
        page.wait_for_timeout(200)
    check(page.get_attribute("#operation-status", "data-status") == "succeeded", "an instance created through the form")

    # A state-changing request without the session's CSRF token is refused.
    before = len(acme.request.get(f"{url}/console/resources").text())
    for form in ({"country": "FR", "name": "forged", "csrf": "wrong"}, {"country": "FR", "name": "forged"}):
        refused = acme.request.post(f"{url}/console/resources", form=dict(form, type="bucket"), max_redirects=0)
        check(refused.status in (403, 422), f"a create without the right CSRF token is refused ({refused.status})")
    check("forged" not in acme.request.get(f"{url}/console/resources").text(), "and creates nothing")

    # Another tenant sees only its own: not acme's countries, pages or operations.
    sante, spage = sign_in(browser, "santeplus", "tenant-admin")
    scounts = map_counts(spage)
    for country, n in expected["santeplus"].items():
        check(scounts.get(country) == n, f"santeplus's map shows {n} in {country} (shows {scounts.get(country)})")
    check(scounts.get("BE") == 0, "santeplus sees nothing of acme's data in BE")
    foreign = spage.goto(f"{url}/console/resources/{expected['acme_resource']}")
    check(foreign.status == 404, f"santeplus cannot open acme's resource by URL ({foreign.status})")
    foreign = spage.goto(operation_url)
    check(foreign.status == 404, f"nor acme's operation ({foreign.status})")
    spage.goto(f"{url}/console")
    own_csrf = spage.get_attribute("form.who input[name=csrf]", "value")
    acted = sante.request.post(f"{url}/console/resources/{expected['acme_resource']}/actions",
                               form={"csrf": own_csrf, "action": "stop"}, max_redirects=0)
    check(acted.status == 404, f"nor act on it ({acted.status})")
    listed = spage.goto(f"{url}/console/resources")
    check(expected["acme_resource"] not in spage.content(), "nor list it")

    # An operator suspends belgacom-be with a confirmation; the tenant's form stops offering it.
    ops, opage = sign_in(browser, "", "operator")
    check(opage.url.endswith("/console/members"), "an operator lands on the members")
    check(opage.inner_text("tr[data-member=numergy-fr] [data-field=breaker]") == "closed",
          "each member's circuit breaker is shown")
    opage.screenshot(path=f"{shots}/members.png", full_page=True)
    opage.click("tr[data-member=belgacom-be] a.action:text('suspend')")
    check("/confirm" in opage.url, "suspending asks for a confirmation")
    opage.click("text=Yes, suspend")
    opage.wait_for_url(re.compile(r".*/console/members$"))
    check(opage.inner_text("tr[data-member=belgacom-be] [data-field=status]") == "suspended", "the member is suspended")
    page.goto(f"{url}/console/buckets/new?country=BE")
    check(page.get_attribute("tr[data-member=belgacom-be]", "data-eligible") == "false",
          "a suspended member is no longer offered to the tenant")
    check(page.query_selector("[data-field=chosen]") is None, "and nothing would be placed in BE")
    opage.goto(f"{url}/console/members/belgacom-be/confirm?action=resume")
    opage.click("text=Yes, resume")
    opage.wait_for_url(re.compile(r".*/console/members$"))
    check(opage.inner_text("tr[data-member=belgacom-be] [data-field=status]") == "active", "and resumed again")
    # Partner applications with their conformance report; approving makes a member.
    opage.goto(f"{url}/console/applications")
    check(opage.query_selector(f"tr[data-application='{expected['application']}']") is not None,
          "the waiting application is listed")
    opage.click(f"tr[data-application='{expected['application']}'] a")
    check(len(opage.query_selector_all("table.checks tbody tr")) >= 10, "with its conformance checks")
    opage.screenshot(path=f"{shots}/application.png", full_page=True)
    opage.click("button[value=approve]")
    opage.wait_for_url(re.compile(r".*/console/applications/app-.*"))
    check(opage.inner_text("[data-field=status]") == "approved", "approving it from the console")
    opage.goto(f"{url}/console/members")
    check(opage.query_selector("tr[data-member=lux-cloud]") is not None, "makes it a member")
    # Tenants with their allowed jurisdictions; the audit log, filtered, and its chain.
    opage.goto(f"{url}/console/tenants")
    check(opage.inner_text("tr[data-tenant=acme] [data-field=allowed]") == ", ".join(sorted(expected["acme_allowed"])),
          "tenants are listed with their allowed jurisdictions")
    opage.goto(f"{url}/console/audit?resource={expected['acme_resource']}")
    actions = [r.inner_text() for r in opage.query_selector_all("table.audit tbody tr td:nth-child(4)")]
    check("placement.decide" in actions and all(a != "" for a in actions), f"the audit log filtered by resource: {actions}")
    opage.click("text=Check the chain and its checkpoints")
    check(opage.inner_text("[data-field=chain]").startswith("The audit chain is intact"), "and its chain checked")
    opage.screenshot(path=f"{shots}/audit.png", full_page=True)
    tenant_on_operator = ops.new_page().goto(f"{url}/console/resources")
    check(tenant_on_operator.status == 403, f"an operator's session has no tenant pages ({tenant_on_operator.status})")

    # Billing: a reconciliation report as tables and its downloads; a statement upload
    # whose errors are shown in place.
    bill, bpage = sign_in(browser, "", "billing")
    check(bpage.url.endswith("/console/reconciliations"), "billing lands on the books")
    run = "form[action='/console/reconciliations']"
    bpage.select_option(f"{run} select[name=member]", "numergy-fr")
    bpage.click(f"{run} button")
    bpage.wait_for_url(re.compile(r".*/console/reconciliations/rec-.*"))
    report_url = bpage.url
    check(bpage.inner_text("[data-field=status]") == "clean", "numergy-fr's own statement reconciles clean")
    check(bpage.inner_text("[data-field=three-way]") == "the three-way check holds", "and the three-way check holds")
    check(len(bpage.query_selector_all("table.tenants tbody tr")) >= 1, "per-tenant totals are shown")
    bpage.screenshot(path=f"{shots}/reconciliation.png", full_page=True)
    csv = bill.request.get(f"{report_url}/report.csv")
    check(csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
          and csv.text().startswith("class,resource_id,sku"), "the report downloads as CSV")
    as_json = bill.request.get(f"{report_url}/report.json")
    check(as_json.status == 200 and as_json.json()["status"] == "clean", "and as JSON")
    upload = "form[action='/console/statements']"
    bpage.goto(f"{url}/console/reconciliations")
    bpage.select_option(f"{upload} select[name=member]", "numergy-fr")
    bpage.fill(f"{upload} input[name=period]", expected["period"])
    bpage.set_input_files(f"{upload} input[name=statement]", expected["bad_statement"])
    bpage.click(f"{upload} button")
    error = bpage.query_selector("[data-field=upload-error]")
    check(error is not None and bpage.inner_text("[data-field=row]") == "1" and bpage.inner_text("[data-field=column]") == "BilledCost",
          "a bad statement's row and column are shown in place")
    bpage.screenshot(path=f"{shots}/upload-error.png", full_page=True)
    bpage.select_option(f"{upload} select[name=member]", "numergy-fr")
    bpage.fill(f"{upload} input[name=period]", expected["period"])
    bpage.set_input_files(f"{upload} input[name=statement]", expected["good_statement"])
    bpage.click(f"{upload} button")
    check("Kept" in (bpage.inner_text("[data-field=upload]") if bpage.query_selector("[data-field=upload]") else ""),
          "a good statement is kept")
    bpage.select_option(f"{run} select[name=member]", "numergy-fr")
    bpage.click(f"{run} button")
    bpage.wait_for_url(re.compile(r".*/console/reconciliations/rec-.*"))
    check(bpage.inner_text("[data-field=source]") == "uploaded", "and the next reconciliation uses it")
    tenant_books = acme.new_page().goto(f"{url}/console/reconciliations")
    check(tenant_books.status == 403, f"a tenant has no books ({tenant_books.status})")

    # Accessibility: axe-core finds no serious or critical violation on the main views.
    axe = open(expected["axe"]).read()
    for context, path in ((acme, "/console"), (acme, "/console/resources"), (ops, "/console/members"), (ops, "/console/applications"), (ops, "/console/audit"), (bill, report_url[len(url):])):
        probe = context.new_page()
        probe.goto(f"{url}{path}")
        probe.evaluate(axe)
        result = probe.evaluate("async () => (await axe.run()).violations.filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id + ': ' + v.help)")
        check(result == [], f"axe finds no serious violation on {path}: {result}")
    browser.close()

print(f"{len(failures)} failures")
sys.exit(min(len(failures), 100))
