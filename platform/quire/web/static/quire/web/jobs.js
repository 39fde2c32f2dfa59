/* Live job rows: every element `.job-row[data-job-id]` is refreshed from GET /api/v1/jobs/{id}/
   while its job is queued or running (about every POLL_MS, a few rows per tick), with Retry / Cancel buttons calling the
   API's retry/ and cancel/ actions. Fires `quire:job` (detail: job JSON) on the row when its state
   changes, so pages can react (the page view loads its lines when the job succeeds). */
"use strict";

(function () {
  const POLL_MS = 1500;
  const FINAL = new Set(["succeeded", "failed", "canceled"]);
  const JOBS_URL = "/api/v1/jobs/";

  function jobUrl(id, action) { return JOBS_URL + id + "/" + (action ? action + "/" : ""); }

  function elapsed(row) {
    const started = row.dataset.started ? Date.parse(row.dataset.started) : NaN;
    if (isNaN(started)) return null;
    const finished = row.dataset.finished ? Date.parse(row.dataset.finished) : NaN;
    const end = isNaN(finished) ? (row.dataset.state === "running" ? Date.now() : NaN) : finished;
    return isNaN(end) ? null : Math.max(0, (end - started) / 1000);
  }

  function renderTime(row) {
    const cell = row.querySelector(".job-time");
    if (cell) cell.textContent = Quire.duration(elapsed(row));
  }

  function render(row, job) {
    const before = row.dataset.state;
    row.dataset.state = job.state;
    row.dataset.started = job.started_at || "";
    row.dataset.finished = job.finished_at || "";
    const badge = row.querySelector(".job-state");
    if (badge) { badge.textContent = job.state; badge.className = "badge job-state state-" + job.state; }
    const attempts = row.querySelector(".job-attempts");
    if (attempts) attempts.textContent = job.attempts > 1 ? "attempt " + job.attempts : "";
    const bar = row.querySelector(".job-progress");
    if (bar) bar.value = job.progress;
    const pct = row.querySelector(".job-percent");
    if (pct) pct.textContent = Math.round(job.progress * 100) + "%";
    const err = row.querySelector(".job-error");
    if (err) {
      err.textContent = "";
      if (job.error) {
        const msg = document.createElement("span");
        msg.className = "error-text";
        msg.textContent = job.error.message || job.error.code;
        err.appendChild(msg);
        if (job.error.code) {
          const code = document.createElement("code");
          code.textContent = job.error.code;
          err.append(" ", code);
        }
      }
    }
    const retry = row.querySelector(".job-retry"), cancel = row.querySelector(".job-cancel");
    if (retry) retry.hidden = !(job.state === "failed" || job.state === "canceled");
    if (cancel) cancel.hidden = !(job.state === "queued" || job.state === "running");
    renderTime(row);
    if (before !== job.state) {
      row.dispatchEvent(new CustomEvent("quire:job", { bubbles: true, detail: job }));
    }
  }

  function showActionError(row, message) {
    const err = row.querySelector(".job-error");
    if (!err) return;
    err.textContent = "";
    const msg = document.createElement("span");
    msg.className = "error-text";
    msg.textContent = message;
    err.appendChild(msg);
  }

  /* One polling loop for the whole page: each tick refreshes at most PER_TICK active rows, in
     turn, so a document of hundreds of pages stays under the API's per-user rate limit; after a
     429 (throttled) the loop waits BACKOFF_MS. */
  const PER_TICK = 6, BACKOFF_MS = 10000;
  const active = [];  // rows whose job is queued or running, in polling order
  let looping = false;

  function poll(row) {
    if (!active.includes(row)) active.push(row);
    if (!looping) loop();
  }

  async function refresh(row) {
    try {
      const job = await Quire.api(jobUrl(row.dataset.jobId));
      render(row, job);
      return FINAL.has(job.state) ? "done" : "again";
    } catch (e) {
      if (e.status === 404) { showActionError(row, "job not found"); return "done"; }
      return e.status === 429 ? "throttled" : "again";  // network hiccup or busy server: try later
    }
  }

  async function loop() {
    looping = true;
    while (active.length) {
      const batch = active.splice(0, PER_TICK).filter((row) => document.body.contains(row));
      const outcomes = await Promise.all(batch.map(refresh));
      batch.forEach((row, i) => { if (outcomes[i] !== "done") active.push(row); });
      const wait = outcomes.includes("throttled") ? BACKOFF_MS : POLL_MS;
      if (active.length) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    looping = false;
  }

  async function act(row, action) {
    const buttons = row.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const job = await Quire.api(jobUrl(row.dataset.jobId, action), { method: "POST" });
      render(row, job);
      if (!FINAL.has(job.state)) poll(row);
    } catch (e) {
      showActionError(row, "Could not " + action + ": " + e.message);
      poll(row);  // the job moved meanwhile: show where it is now
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  /* Start following a row (also for rows added after load, e.g. by uploads). */
  function watch(row) {
    if (!row.dataset.jobId || row.dataset.watched) return;
    row.dataset.watched = "1";
    const retry = row.querySelector(".job-retry"), cancel = row.querySelector(".job-cancel");
    if (retry) retry.addEventListener("click", () => act(row, "retry"));
    if (cancel) cancel.addEventListener("click", () => act(row, "cancel"));
    renderTime(row);
    if (!FINAL.has(row.dataset.state)) poll(row);
  }

  document.querySelectorAll(".job-row[data-job-id]").forEach(watch);
  setInterval(() => {
    document.querySelectorAll('.job-row[data-state="running"]').forEach(renderTime);
  }, 1000);

  window.QuireJobs = { watch, render };
})();
