// modempool console: our own small script. Pages work without it; with it, parts of a page
// refresh themselves (data-poll) and the send form counts characters and parts as you type.
"use strict";

function poll(element) {
  const url = element.dataset.poll;
  const every = parseInt(element.dataset.every || "3000", 10);
  async function refresh() {
    try {
      const response = await fetch(url, {credentials: "same-origin", headers: {"X-Fragment": "1"}});
      if (response.redirected || !response.ok) return;   // signed out or gone: stop quietly
      element.innerHTML = await response.text();
      element.dispatchEvent(new CustomEvent("refreshed", {bubbles: true}));
    } catch (error) {
      // the server is restarting: try again at the next tick
    }
    if (element.dataset.stopWhen && element.querySelector(element.dataset.stopWhen)) return;
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
}

function costCounter(textarea) {
  const out = document.getElementById(textarea.dataset.cost);
  const format = document.getElementById("cost-format");
  if (!out || !format) return;
  let timer = null;
  async function update() {
    const text = textarea.value;
    if (!text) { out.textContent = ""; return; }
    const response = await fetch("/v1/cost?text=" + encodeURIComponent(text));
    if (!response.ok) { out.textContent = ""; return; }
    const cost = await response.json();
    out.textContent = format.content.textContent.replace(/\{(\w+)\}/g, (_, key) => String(cost[key] ?? ""));
  }
  textarea.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 150); });
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("textarea[data-cost]").forEach(costCounter);
  // forms in refreshed fragments too: one listener on the document
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});
