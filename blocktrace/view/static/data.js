// The page's one data layer: the same questions, answered by the server's JSON endpoints
// (served page) or by the local backend from the JSON object inlined in a --html page.
// Every answer has the shape docs/VIEW.md gives for the endpoint of the same name.

import { localBackend } from "./local.js";

export function httpBackend(base) {
  async function get(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    const text = query.toString();
    let response = await fetch(base + path + (text ? "?" + text : ""), { cache: "no-store" });
    // 503: the server is still building the trace's tables; ask again shortly.
    for (let tries = 0; response.status === 503 && tries < 600; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      response = await fetch(base + path + (text ? "?" + text : ""), { cache: "no-store" });
    }
    // 409: the file changed on disk since it was opened; the page asks verify again.
    if (response.status === 409 && backend.onChanged) backend.onChanged(Number(params && params.t) || 0);
    if (!response.ok) {
      let reason = "";
      try {
        const body = await response.json();
        reason = body.error || body.reason || "";
      } catch (_) {
        reason = "";
      }
      throw new Error(`${path}: ${reason || "HTTP " + response.status}`);
    }
    return response.json();
  }
  const backend = {
    kind: "http",
    onChanged: null,
    meta: () => get("meta"),
    verify: (t) => get("verify", { t }),
    window: (t, from, count) => get("window", { t, from, count }),
    stack: (t, step) => get("stack", { t, step }),
    values: (t, step) => get("values", { t, step }),
    source: (t, file) => get("source", { t, file }),
    nav: (t, step, how, extra) => get("nav", { t, step, how, ...(extra || {}) }),
    search: (t, name, text, limit, from) => get("search", { t, name, text, limit, from }),
    timeline: (t, from, to, buckets) => get("timeline", { t, from, to, buckets }),
    diff: () => get("diff"),
  };
  return backend;
}

// The backend this page uses: the inlined data when there is some, else the server under
// this page's own URL (a token path: "/<token>/" serves the page, "/<token>/api/" the JSON).
export function pageBackend(doc) {
  const inlined = doc.getElementById("blocktrace-data");
  if (inlined) return localBackend(JSON.parse(inlined.textContent));
  return httpBackend(new URL("api/", doc.baseURI).href);
}
