// The console's only script (same origin, no inline code: the CSP forbids it).
// - A select marked data-autosubmit submits its form when changed.
// - An element #operation-status is kept current by polling its operation's status.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  const status = document.getElementById("operation-status");
  if (status) {
    const url = `/console/operations/${encodeURIComponent(status.dataset.operation)}/status`;
    const final = new Set(["succeeded", "failed"]);
    let delay = 400;
    const poll = async () => {
      try {
        const answer = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" }, redirect: "manual" });
        const json = (answer.headers.get("content-type") || "").startsWith("application/json");
        if (answer.ok && json) {
          const op = await answer.json();
          status.textContent = op.status;
          status.dataset.status = op.status;
          if (final.has(op.status)) return;
          delay = 400;
        } else if (answer.type === "opaqueredirect" || answer.status === 401 || answer.status === 403 || answer.status === 404) {
          // Signed out, or not this visitor's: stop, and say so.
          status.textContent += " (reload the page to follow it)";
          return;
        }
      } catch (e) {
        // The broker restarting, the network: try again, less often.
        delay = Math.min(delay * 2, 5000);
      }
      setTimeout(poll, delay);
    };
    if (!final.has(status.dataset.status)) poll();
  }
});
