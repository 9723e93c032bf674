// chartwire admin: small enhancements over pages that work without script.
// - event checkboxes: "all events of this type" and "all record events"
//   tick (and lock) the boxes they cover;
// - custom headers: a button adds another empty row;
// - the delivery log refreshes itself while the page is open.
"use strict";

function syncEventGroups(form) {
  const all = form.querySelector("[data-select-all]");
  const everyRecord = all && all.checked;
  form.querySelectorAll(".event-group").forEach((group) => {
    const groupBox = group.querySelector("[data-select-group]");
    const operational = group.dataset.group === "endpoint.*";
    const coveredByAll = everyRecord && !operational;
    if (groupBox) {
      groupBox.disabled = coveredByAll;
      if (coveredByAll) groupBox.checked = true;
    }
    const covered = coveredByAll || (groupBox && groupBox.checked);
    group.querySelectorAll("input[type=checkbox]:not([data-select-group])").forEach((box) => {
      if (covered) box.checked = true;
      box.disabled = covered;
    });
  });
}

function enableEventGroups() {
  const form = document.querySelector(".endpoint-form");
  if (!form) return;
  let wasAll = (form.querySelector("[data-select-all]") || {}).checked;
  form.addEventListener("change", (event) => {
    const box = event.target;
    if (box.matches("[data-select-all]") && !box.checked && wasAll) {
      form.querySelectorAll(".event-group:not([data-group='endpoint.*']) input").forEach((b) => {
        b.checked = false;
      });
    } else if (box.matches("[data-select-group]") && !box.checked) {
      box.closest(".event-group").querySelectorAll("input").forEach((b) => {
        b.checked = false;
      });
    }
    wasAll = (form.querySelector("[data-select-all]") || {}).checked;
    syncEventGroups(form);
  });
  // Disabled boxes are not submitted; the patterns they stand under are.
  form.addEventListener("submit", () => {
    form.querySelectorAll(".event-group input:disabled").forEach((b) => {
      b.checked = false;
    });
    form.querySelectorAll("[data-select-group]:disabled").forEach((b) => {
      b.disabled = false;
      b.checked = false;
    });
  });
  syncEventGroups(form);
}

function enableHeaderRows() {
  const button = document.querySelector("[data-add-header]");
  const rows = document.querySelector("[data-header-rows]");
  if (!button || !rows) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const last = rows.lastElementChild;
    if (!last) return;
    const row = last.cloneNode(true);
    row.querySelectorAll("input").forEach((input) => {
      input.value = "";
      input.placeholder = "";
    });
    rows.appendChild(row);
    row.querySelector("input").focus();
  });
}

function enableLogRefresh() {
  const section = document.querySelector("[data-refresh]");
  if (!section || !window.fetch || !window.DOMParser) return;
  const every = Number(section.dataset.refresh) || 3000;
  const refresh = async () => {
    if (document.hidden || section.contains(document.activeElement)) return;
    try {
      const response = await fetch(section.dataset.refreshUrl || window.location.href, {
        credentials: "same-origin",
      });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(section.id);
      if (!fresh) return;
      const open = Array.from(section.querySelectorAll("details[open]")).map((d) => d.id);
      section.innerHTML = fresh.innerHTML;
      open.forEach((id) => {
        const details = document.getElementById(id);
        if (details) details.open = true;
      });
    } catch (_) {
      // Offline or signed out: the next reload shows why.
    }
  };
  window.setInterval(refresh, every);
}

document.addEventListener("DOMContentLoaded", () => {
  enableEventGroups();
  enableHeaderRows();
  enableLogRefresh();
});
