// The analysts' desk: reviewers' decisions sent to the Management API, and run links that open the
// run's page in the whole Airflow window. Everything else on the page works without this script.
(() => {
  "use strict";
  const api = document.body.dataset.api;
  const labels = JSON.parse(document.body.dataset.labels || "{}");
  const FINAL = ["completed", "denied", "review_timeout", "revoked", "failed"];

  // Airflow shows this page in a sandboxed iframe that may not navigate the window by itself
  // (no allow-top-navigation), but may reach it (same origin): a link followed there opens the run.
  function openInWindow(href) {
    try {
      if (window.top === window) return false;
      const doc = window.top.document;
      const link = doc.createElement("a");
      link.href = href;
      doc.body.appendChild(link);
      link.click();
      link.remove();
      return true;
    } catch (err) {
      return false;
    }
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-top]");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    if (openInWindow(link.href)) event.preventDefault();
  });

  function showStatus(scope, status) {
    for (const badge of scope.querySelectorAll(".status[data-status]")) {
      badge.className = `status status-${status}`;
      badge.dataset.status = status;
      badge.textContent = labels[status] || status;
    }
  }

  // After a decision: the review watcher resumes the proposal within seconds; follow it to its end.
  async function follow(id, scope, note, verdict) {
    const until = Date.now() + 180000;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      let body;
      try {
        const response = await fetch(`${api}/proposals/${encodeURIComponent(id)}`, { credentials: "same-origin" });
        if (!response.ok) continue;
        body = await response.json();
      } catch (err) {
        continue;
      }
      showStatus(scope, body.status);
      const reason = scope.querySelector(".reason");
      if (reason && body.reason) reason.textContent = body.reason;
      if (FINAL.includes(body.status)) {
        note.textContent = `${verdict} Now ${labels[body.status] || body.status}.`;
        return;
      }
    }
  }

  // A reviewer's decision or revocation: sent, then the row follows the proposal to its end.
  async function send(form, path, body, verdict, next) {
    const outcome = form.querySelector(".outcome");
    const fail = (message) => {
      outcome.textContent = message;
      outcome.classList.add("error");
      outcome.setAttribute("role", "alert");
    };
    const buttons = form.querySelectorAll("button");
    buttons.forEach((button) => { button.disabled = true; });
    let response, answer = {};
    try {
      response = await fetch(`${api}/proposals/${encodeURIComponent(form.dataset.proposal)}/${path}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      answer = await response.json().catch(() => ({}));
    } catch (err) {
      fail(`Not sent: ${err.message}`);
      buttons.forEach((button) => { button.disabled = false; });
      return;
    }
    if (!response.ok) {
      const undone = path === "revoke" ? "Not revoked" : "Not decided";
      fail(`${undone} (${response.status}): ${answer.detail || response.statusText}`);
      buttons.forEach((button) => { button.disabled = false; });
      return;
    }
    const note = document.createElement("p");
    note.className = "decided";
    note.setAttribute("role", "status");
    note.textContent = `${verdict} ${next}`;
    (form.closest("details.revoke") || form).replaceWith(note);
    follow(form.dataset.proposal, note.closest("[data-proposal]") || document.body, note, verdict);
  }

  // What each proposal awaiting review would change: for each scope, the live rule beside the
  // proposed one, key by key (read when the page is shown: a page of reviews stays fast to load).
  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  function code(value) {
    return element("code", {}, value === undefined ? "" : JSON.stringify(value));
  }

  function scopeTable(change) {
    const said = change.new ? element("span", { class: "mark mark-new" }, "no live rule yet")
      : `live version ${change.live_version}, ${change.changes} change${change.changes === 1 ? "" : "s"}`;
    const rows = change.keys.map((key) => element(
      "tr", { class: `key-${key.change}`, "data-change": key.change },
      element("th", { scope: "row" }, element("code", {}, key.path || "(rule)"),
              key.change === "same" ? "" : element("span", { class: `change change-${key.change}` }, key.change)),
      element("td", {}, key.change === "added" ? "" : code(key.live)),
      element("td", {}, key.change === "removed" ? "" : code(key.proposed))));
    return element("table", { class: "scope-changes", "data-scope": change.scope },
      element("caption", {}, element("code", {}, change.scope), " ", said),
      element("thead", {}, element("tr", {}, element("th", { scope: "col" }, "Key"),
                                   element("th", { scope: "col" }, "Live"), element("th", { scope: "col" }, "Proposed"))),
      element("tbody", {}, ...rows));
  }

  for (const box of document.querySelectorAll(".changes[data-changes]")) {
    fetch(`${api}/proposals/${encodeURIComponent(box.dataset.changes)}/changes`, { credentials: "same-origin" })
      .then((response) => response.json().then((body) => ({ ok: response.ok, body })))
      .then(({ ok, body }) => {
        if (!ok) throw new Error(body.detail || "no answer");
        box.replaceChildren(...body.scopes.map(scopeTable));
      })
      .catch((err) => {
        box.replaceChildren(element("p", { class: "why-not" }, `What is live now is unknown: ${err.message}`));
      });
  }

  // The reason is required: it goes into the audit record with the reviewer's name.
  function reasonOf(form) {
    const reason = form.elements.reason.value.trim();
    if (!reason) {
      const outcome = form.querySelector(".outcome");
      outcome.textContent = "Give a reason: it is kept in the audit record.";
      outcome.classList.add("error");
      outcome.setAttribute("role", "alert");
      form.elements.reason.focus();
    }
    return reason;
  }

  for (const form of document.querySelectorAll("form.revoke")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = reasonOf(form);
      if (reason) send(form, "revoke", { reason }, `Revoked by you: “${reason}”.`, "It takes no further step…");
    });
  }

  for (const form of document.querySelectorAll("form.decide")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const approved = event.submitter ? event.submitter.value === "true" : false;
      const reason = reasonOf(form);
      if (!reason) return;
      send(form, "decision", { approved, reason }, `${approved ? "Approved" : "Denied"} by you: “${reason}”.`,
           "Resuming…");
    });
  }
})();
