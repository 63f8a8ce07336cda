// modelyard console: small progressive enhancements. Every page works without this file.
"use strict";

// Refresh a fragment in place: <div data-refresh="/console/…" data-interval="5">.
// Stops when the session has ended (the answer is not the fragment); a reload then shows
// the login page.
function startRefresh(element) {
  const url = element.getAttribute("data-refresh");
  const seconds = Math.max(2, Number(element.getAttribute("data-interval")) || 5);
  let timer = null;
  async function refresh() {
    if (document.hidden) {
      return;
    }
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
        redirect: "manual",
      });
      if (response.status !== 200) {
        window.clearInterval(timer);
        return;
      }
      const html = await response.text();
      const parsed = new DOMParser().parseFromString(html, "text/html");
      element.replaceChildren(...parsed.body.childNodes);
    } catch (error) {
      window.clearInterval(timer);
    }
  }
  timer = window.setInterval(refresh, seconds * 1000);
}

// Ask before a destructive submit: <button data-confirm="Roll back alias chat?">.
function confirmSubmits(event) {
  const submitter = event.submitter;
  if (submitter && submitter.hasAttribute("data-confirm")) {
    if (!window.confirm(submitter.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(startRefresh);
  document.addEventListener("submit", confirmSubmits);
});
