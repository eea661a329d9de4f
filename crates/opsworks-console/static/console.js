// The console's only script: live updates over server-sent events, and confirmations.
// Every page works without it; it only saves reloads.
"use strict";

function statusClass(status) {
  if (status === "online" || status === "successful") return "ok";
  if (["setup_failed", "start_failed", "failed", "connection_lost", "stop_failed"].includes(status)) return "bad";
  if (["stopped", "terminated", "shutting_down", "stopping"].includes(status)) return "off";
  return "busy";
}

function setPill(el, status) {
  if (!el || !status) return;
  el.textContent = status;
  el.className = "pill " + statusClass(status);
}

function follow(root) {
  const source = new EventSource(root.dataset.live);
  source.addEventListener("update", (e) => {
    const data = JSON.parse(e.data);
    for (const i of data.instances || []) {
      for (const row of document.querySelectorAll('[data-instance="' + i.InstanceId + '"]')) {
        setPill(row.querySelector('[data-field="Status"]'), i.Status);
        const ip = row.querySelector('[data-field="PrivateIp"]');
        if (ip && i.PrivateIp) ip.textContent = i.PrivateIp;
      }
    }
    if (data.Status) setPill(document.getElementById("deployment-status"), data.Status);
    for (const c of data.commands || []) {
      const box = document.querySelector('[data-command="' + c.CommandId + '"]');
      if (!box) continue;
      setPill(box.querySelector('[data-field="Status"]'), c.Status);
      const log = box.querySelector('[data-field="Log"]');
      if (log && c.Log != null && log.textContent !== c.Log) {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.textContent = c.Log;
        if (atEnd) log.scrollTop = log.scrollHeight;
      }
    }
  });
}

function cell(text, tag) {
  const td = document.createElement("td");
  if (tag) {
    const span = document.createElement("span");
    span.className = "tag";
    span.textContent = text;
    td.appendChild(span);
  } else {
    td.textContent = text;
  }
  return td;
}

function followEvents(table) {
  const rows = table.querySelector("tbody");
  const source = new EventSource(table.dataset.events);
  source.addEventListener("event", (e) => {
    const ev = JSON.parse(e.data);
    const none = rows.querySelector("tr.none");
    if (none) none.remove();
    const tr = document.createElement("tr");
    const concerns = document.createElement("td");
    concerns.className = "concerns";
    (ev.Links || []).forEach((link, i) => {
      if (i > 0) concerns.append(" · ");
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      concerns.appendChild(a);
    });
    const detail = cell(ev.Text);
    detail.className = "detail";
    detail.title = ev.DetailText || "";
    tr.append(cell(ev.At), cell(ev.Type, true), concerns, detail);
    rows.prepend(tr);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(follow);
  document.querySelectorAll("[data-events]").forEach(followEvents);
  // "Go back" on error pages: the previous page when there is one (the link works without).
  document.querySelectorAll("a[data-back]").forEach((a) => {
    a.addEventListener("click", (e) => {
      if (window.history.length > 1) {
        e.preventDefault();
        window.history.back();
      }
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  });
});
