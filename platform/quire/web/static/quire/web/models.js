/* Models page (staff): promote / roll back model versions, start a retraining and watch the
   latest training job live, all through the JSON API with the session's CSRF token:
     POST /api/v1/models/{id}/promote/   {"override": bool}  (409 with a message when worse)
     POST /api/v1/models/rollback/       {"kind": ...}
     POST /api/v1/models/train/          {"kind": "recognizer", steps, time_budget_s, ...} → 202 job
     GET  /api/v1/training-jobs/{id}/    polled every 2 s while queued or running
     POST /api/v1/training-jobs/{id}/cancel/
   After a change of registry state (promotion, roll-back, a training job ending) the page is
   reloaded so the server-rendered tables are current; the message survives the reload. */
"use strict";

(function () {
  const root = document.getElementById("models-page");
  if (!root) return;
  const POLL_MS = 2000;
  const FLASH_KEY = "quire-models-flash";
  const ACTIVE = ["queued", "running"];
  const status = document.getElementById("models-status");

  function say(el, message, isError) {
    if (!el) return;
    el.textContent = message;
    el.classList.toggle("error-text", !!isError);
  }

  /* Reload the page, showing `message` in the status line once it is back. */
  function reloadWith(message) {
    try { sessionStorage.setItem(FLASH_KEY, message); } catch (e) { /* storage off: no message */ }
    window.location.reload();
  }

  try {
    const flash = sessionStorage.getItem(FLASH_KEY);
    if (flash) { sessionStorage.removeItem(FLASH_KEY); say(status, flash); }
  } catch (e) { /* storage off */ }

  /* ------------------------------------------------------------------ promote / roll back */
  root.querySelectorAll(".model-promote").forEach((button) => {
    button.addEventListener("click", async () => {
      const cell = button.closest(".model-actions");
      const override = cell.querySelector(".model-override");
      const message = cell.querySelector(".model-message");
      const forced = !!(override && override.checked);
      button.disabled = true;
      say(message, "Promoting…");
      try {
        const version = await Quire.api(button.dataset.url, { method: "POST", json: { override: forced } });
        reloadWith(version.name + " is now production" + (forced ? " (override)." : "."));
      } catch (e) {
        button.disabled = false;
        say(message, e.message, true);
        if (e.status === 409 && override) {
          override.closest("label").hidden = false;
          override.focus();
        }
      }
    });
  });

  root.querySelectorAll(".model-rollback").forEach((button) => {
    button.addEventListener("click", async () => {
      const message = button.closest(".model-actions").querySelector(".model-message");
      button.disabled = true;
      say(message, "Rolling back…");
      try {
        const restored = await Quire.api(root.dataset.rollbackUrl, { method: "POST", json: { kind: button.dataset.kind } });
        reloadWith("Rolled back: " + restored.name + " is production again.");
      } catch (e) {
        button.disabled = false;
        say(message, e.message, true);
      }
    });
  });

  /* ------------------------------------------------------------------ retraining */
  const form = document.getElementById("train-form");
  const submit = document.getElementById("train-submit");
  const formMessage = document.getElementById("train-message");
  const panel = document.getElementById("training-live");
  let watched = null;    // URL of the training job polled
  let sawActive = false; // it was queued/running while this page watched it
  let timer = null;

  function number(value, digits) {
    return value === null || value === undefined || isNaN(value) ? "—" : Number(value).toFixed(digits);
  }

  function show(job) {
    const m = job.metrics || {};
    const active = ACTIVE.includes(job.state);
    panel.hidden = false;
    panel.dataset.state = job.state;
    const badge = panel.querySelector(".training-state");
    badge.textContent = job.state;
    badge.className = "badge training-state state-" + job.state;
    panel.querySelector(".training-id").textContent = "#" + job.id;
    panel.querySelector(".training-phase").textContent =
      m.phase || (job.state === "queued" ? "waiting for a worker" : "");
    const progress = panel.querySelector(".training-progress");
    progress.value = job.progress || 0;
    panel.querySelector(".training-percent").textContent = Math.round((job.progress || 0) * 100) + "%";
    panel.querySelector(".training-step").textContent =
      m.step === undefined ? "—" : m.step + " / " + (m.steps === undefined ? "?" : m.steps);
    panel.querySelector(".training-loss").textContent = number(m.loss, 4);
    const cer = m.heldout && m.heldout.cer !== undefined ? m.heldout.cer : m.val_cer;
    panel.querySelector(".training-cer").textContent = number(cer, 4);
    panel.querySelector(".training-cancel").hidden = !active;
    const result = panel.querySelector(".training-result");
    result.textContent = "";
    result.classList.remove("error-text");
    if (job.candidate) {
      result.textContent = "Candidate " + job.candidate.version + " registered (" + job.candidate.state + ").";
    } else if (job.error_message) {
      result.textContent = job.error_message + (job.error_code ? " (" + job.error_code + ")" : "");
      result.classList.add("error-text");
    }
    submit.disabled = active;
  }

  async function poll() {
    timer = null;
    if (!watched) return;
    let job;
    try {
      job = await Quire.api(watched);
    } catch (e) {
      say(formMessage, "Could not read the training job: " + e.message, true);
      timer = setTimeout(poll, POLL_MS * 2);
      return;
    }
    show(job);
    if (ACTIVE.includes(job.state)) {
      sawActive = true;
      timer = setTimeout(poll, POLL_MS);
    } else if (sawActive) {
      sawActive = false;
      reloadWith("Training job #" + job.id + " " + job.state
                 + (job.candidate ? ": candidate " + job.candidate.version + " registered." : "."));
    }
  }

  function watch(url) {
    watched = url;
    if (timer) clearTimeout(timer);
    poll();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { kind: "recognizer" };
    form.querySelectorAll("[data-param]").forEach((input) => {
      if (input.type === "checkbox") body[input.name] = input.checked;
      else if (input.value.trim() !== "") body[input.name] = input.value.trim();  // the API checks and names bad values
    });
    submit.disabled = true;
    say(formMessage, "Starting the training…");
    try {
      const job = await Quire.api(form.dataset.url, { method: "POST", json: body });
      say(formMessage, "Training job #" + job.id + " queued.");
      sawActive = true;
      show(job);
      watch(job.url);
    } catch (e) {
      submit.disabled = false;
      say(formMessage, "Not started: " + e.message, true);
    }
  });

  panel.querySelector(".training-cancel").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      show(await Quire.api(watched.replace(/\/?$/, "/") + "cancel/", { method: "POST" }));
    } catch (e) {
      say(formMessage, "Not canceled: " + e.message, true);
    } finally {
      button.disabled = false;
    }
  });

  if (panel.dataset.url) watch(panel.dataset.url);
})();
