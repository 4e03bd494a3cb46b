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
    const poll = async () => {
      try {
        const answer = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
        if (answer.ok) {
          const op = await answer.json();
          status.textContent = op.status;
          status.dataset.status = op.status;
          if (final.has(op.status)) return;
        }
      } catch (e) {
        // The broker restarting, the network: try again.
      }
      setTimeout(poll, 400);
    };
    if (!final.has(status.dataset.status)) poll();
  }
});
