/* Shared helpers of the Quire web page: CSRF token, JSON API calls with readable errors. */
"use strict";

window.Quire = (function () {
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /* The API's `detail` message of an error answer, or a fallback naming the status. */
  function errorDetail(status, text) {
    try {
      const body = JSON.parse(text);
      if (body && typeof body.detail === "string") return body.detail;
    } catch (e) { /* not JSON */ }
    if (status === 0) return "the server could not be reached";
    if (status === 413) return "the file is too large for the server";
    return "the server answered " + status;
  }

  /* fetch() a JSON API URL with the session cookie and CSRF token; resolves to the parsed body,
     rejects with an Error whose message is the API's `detail` (and `.status`). */
  async function api(url, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    opts.headers = Object.assign({ "Accept": "application/json" }, opts.headers);
    if (opts.method && opts.method !== "GET") opts.headers["X-CSRFToken"] = csrfToken();
    if (opts.json !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    let response;
    try {
      response = await fetch(url, opts);
    } catch (e) {
      const err = new Error("the server could not be reached");
      err.status = 0;
      throw err;
    }
    const text = await response.text();
    if (!response.ok) {
      const err = new Error(errorDetail(response.status, text));
      err.status = response.status;
      throw err;
    }
    return text ? JSON.parse(text) : null;
  }

  /* Seconds as "0.8 s", "42 s", "3 min 05 s". */
  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return m + " min " + String(s).padStart(2, "0") + " s";
  }

  return { csrfToken, errorDetail, api, duration };
})();
