/* Page view: lines from GET /api/v1/pages/{id}/ drawn as SVG polygons over the page image (the
   SVG's viewBox is the page's pixel size, so polygons scale with the displayed image) and listed
   as text with low-confidence characters shaded. Hovering a polygon highlights its text line and
   back; a line is corrected in place and saved with PATCH /api/v1/lines/{id}/.
   Each line's "history" toggle lists its versions (GET /api/v1/lines/{id}/versions/).
   Keys: ↓/j next line, ↑/k previous, Enter edit, h history; while editing Enter or Ctrl+Enter saves, Esc cancels. */
"use strict";

(function () {
  const root = document.getElementById("page-view");
  if (!root) return;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const LOW = 0.5, MID = 0.8;  // confidence bands shaded strongly / lightly
  const overlay = document.getElementById("overlay");
  const list = document.getElementById("lines");
  const empty = document.getElementById("no-lines");
  const status = document.getElementById("line-status");
  let lines = [];
  let current = -1;
  let editing = null;  // {index, input}

  function lineUrl(id) { return root.dataset.lineUrl.replace(/\/0\/$/, "/" + id + "/"); }

  function say(message, isError) {
    status.textContent = message;
    status.classList.toggle("error-text", !!isError);
  }

  function band(conf) {
    if (conf === null || conf === undefined) return "";
    return conf < LOW ? "c-low" : conf < MID ? "c-mid" : "";
  }

  function fillText(span, line) {
    span.textContent = "";
    const chars = Array.from(line.text);
    const confs = line.char_confidences || [];
    if (line.is_ground_truth || confs.length !== chars.length) {
      span.textContent = line.text;
    } else {
      let run = "", runClass = null;
      const flush = () => {
        if (!run) return;
        if (runClass) {
          const s = document.createElement("span");
          s.className = runClass;
          s.textContent = run;
          span.appendChild(s);
        } else {
          span.appendChild(document.createTextNode(run));
        }
        run = "";
      };
      chars.forEach((ch, i) => {
        const cls = band(confs[i]) || null;
        if (cls !== runClass) { flush(); runClass = cls; }
        run += ch;
      });
      flush();
    }
    if (!line.text) span.innerHTML = '<span class="muted">(empty line)</span>';
  }

  function lineItem(line, i) {
    const li = document.createElement("li");
    li.className = "line";
    li.tabIndex = -1;
    li.dataset.index = i;
    li.dataset.lineId = line.id;
    if (line.is_ground_truth) li.classList.add("gt");
    if (!line.is_ground_truth && line.confidence !== null && line.confidence < MID) li.classList.add("line-low");
    const no = document.createElement("span");
    no.className = "line-no";
    no.textContent = i + 1;
    const text = document.createElement("span");
    text.className = "line-text";
    fillText(text, line);
    const meta = document.createElement("span");
    meta.className = "line-meta";
    meta.textContent = line.is_ground_truth ? "corrected"
      : line.confidence === null ? "" : Math.round(line.confidence * 100) + "%";
    meta.title = line.is_ground_truth ? "Corrected by a person (ground truth)" : "Line confidence";
    if (line.printed) {  // the line-type classifier takes it for printed or typed text
      meta.textContent = "printed " + meta.textContent;
      meta.title += "; printed or typed text (letterhead, typewriter), not handwriting";
    }
    const history = document.createElement("button");
    history.type = "button";
    history.className = "line-history-toggle";
    history.textContent = "history";
    history.title = "Versions of this line (who, when, text); key h";
    history.setAttribute("aria-expanded", "false");
    history.addEventListener("click", (event) => { event.stopPropagation(); toggleHistory(i); });
    li.append(no, text, meta, history);
    li.addEventListener("mouseenter", () => highlight(i, true));
    li.addEventListener("mouseleave", () => highlight(i, false));
    li.addEventListener("click", () => { if (!editing || editing.index !== i) { select(i); edit(i); } });
    return li;
  }

  function versionsUrl(id) { return lineUrl(id) + "versions/"; }

  /* Show or hide the versions of line i (GET /api/v1/lines/{id}/versions/), oldest first. */
  async function toggleHistory(i) {
    const li = list.children[i];
    const button = li.querySelector(".line-history-toggle");
    const open = li.querySelector(".line-history");
    if (open) {
      open.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const panel = document.createElement("ol");
    panel.className = "line-history";
    panel.setAttribute("aria-label", "Versions of line " + (i + 1));
    panel.addEventListener("click", (event) => event.stopPropagation());
    panel.innerHTML = '<li class="muted">Loading…</li>';
    li.appendChild(panel);
    button.setAttribute("aria-expanded", "true");
    try {
      const versions = await Quire.api(versionsUrl(lines[i].id));
      panel.textContent = "";
      if (!versions.length) {
        const item = document.createElement("li");
        item.className = "muted";
        item.textContent = "No versions yet: the text is the model's output, never corrected.";
        panel.appendChild(item);
      }
      versions.forEach((v) => {
        const item = document.createElement("li");
        item.className = "line-version version-" + v.source;
        const who = document.createElement("span");
        who.className = "who";
        const when = new Date(v.created_at);
        who.textContent = (v.source === "model" ? "model output" : (v.user || "a deleted user"))
          + " · " + (isNaN(when) ? v.created_at : when.toLocaleString());
        who.title = v.created_at;
        const text = document.createElement("span");
        text.className = "version-text";
        text.textContent = v.text;
        item.append(who, text);
        panel.appendChild(item);
      });
    } catch (e) {
      panel.innerHTML = "";
      const item = document.createElement("li");
      item.className = "error-text";
      item.textContent = "Could not load the versions: " + e.message;
      panel.appendChild(item);
    }
  }

  function polygon(line, i) {
    const p = document.createElementNS(SVG_NS, "polygon");
    p.setAttribute("points", (line.polygon || []).map((pt) => pt[0] + "," + pt[1]).join(" "));
    p.setAttribute("class", "line-poly");
    p.dataset.index = i;
    p.addEventListener("mouseenter", () => highlight(i, true));
    p.addEventListener("mouseleave", () => highlight(i, false));
    p.addEventListener("click", () => { select(i); list.children[i].scrollIntoView({ block: "nearest" }); });
    return p;
  }

  function highlight(i, on) {
    const li = list.children[i], p = overlay.children[i];
    if (li) li.classList.toggle("hl", on);
    if (p) p.classList.toggle("hl", on);
  }

  function select(i) {
    if (i < 0 || i >= lines.length) return;
    if (current >= 0 && list.children[current]) {
      list.children[current].classList.remove("current");
      overlay.children[current] && overlay.children[current].classList.remove("current");
    }
    current = i;
    const li = list.children[i];
    li.classList.add("current");
    overlay.children[i] && overlay.children[i].classList.add("current");
    if (!editing) li.focus({ preventScroll: true });
    li.scrollIntoView({ block: "nearest" });
  }

  function render() {
    list.textContent = "";
    overlay.textContent = "";
    lines.forEach((line, i) => {
      list.appendChild(lineItem(line, i));
      overlay.appendChild(polygon(line, i));
    });
    empty.hidden = lines.length > 0;
    if (current >= lines.length) current = -1;
    if (current < 0) {  // a link to one line (search results): #line-<id>
      const m = /^#line-(\d+)$/.exec(location.hash);
      if (m) current = lines.findIndex((l) => String(l.id) === m[1]);
    }
    if (current >= 0) select(current);
  }

  function edit(i) {
    if (editing) cancel();
    const line = lines[i];
    const li = list.children[i];
    const text = li.querySelector(".line-text");
    const input = document.createElement("input");
    input.type = "text";
    input.className = "line-input";
    input.value = line.text;
    input.setAttribute("aria-label", "Text of line " + (i + 1));
    text.hidden = true;
    li.insertBefore(input, text);
    li.classList.add("editing");
    editing = { index: i, input };
    input.focus();
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); save(); }
      else if (event.key === "Escape") { event.preventDefault(); cancel(); }
      event.stopPropagation();
    });
    input.addEventListener("click", (event) => event.stopPropagation());
  }

  function close() {
    if (!editing) return;
    const li = list.children[editing.index];
    editing.input.remove();
    li.querySelector(".line-text").hidden = false;
    li.classList.remove("editing");
    const i = editing.index;
    editing = null;
    select(i);
  }

  function cancel() { close(); say(""); }

  async function save() {
    if (!editing) return;
    const { index, input } = editing;
    const line = lines[index];
    if (input.value === line.text && line.is_ground_truth) { cancel(); return; }
    input.disabled = true;
    say("Saving line " + (index + 1) + "…");
    try {
      const saved = await Quire.api(lineUrl(line.id), { method: "PATCH", json: { text: input.value } });
      lines[index] = saved;
      editing = null;
      const li = lineItem(saved, index);
      list.replaceChild(li, list.children[index]);
      select(index);
      say("Line " + (index + 1) + " saved as a correction.");
    } catch (e) {
      input.disabled = false;
      input.focus();
      say("Line " + (index + 1) + " was not saved: " + e.message, true);
    }
  }

  document.addEventListener("keydown", (event) => {
    if (editing || event.altKey || event.ctrlKey || event.metaKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select", "button"].includes(tag) && !event.target.classList.contains("line")) return;
    if (!lines.length) return;
    if (event.key === "ArrowDown" || event.key === "j") {
      event.preventDefault();
      select(current < 0 ? 0 : Math.min(lines.length - 1, current + 1));
    } else if (event.key === "ArrowUp" || event.key === "k") {
      event.preventDefault();
      select(current < 0 ? 0 : Math.max(0, current - 1));
    } else if (event.key === "Enter" && current >= 0) {
      event.preventDefault();
      edit(current);
    } else if (event.key === "h" && current >= 0) {
      event.preventDefault();
      toggleHistory(current);
    }
  });

  async function load() {
    try {
      const page = await Quire.api(root.dataset.pageUrl);
      lines = page.lines;
      render();
      root.dataset.loaded = "1";
    } catch (e) {
      say("Could not load the lines: " + e.message, true);
    }
  }

  const jobRow = document.getElementById("page-job");
  if (jobRow) {
    jobRow.addEventListener("quire:job", (event) => { if (event.detail.state === "succeeded") load(); });
  }
  load();
})();
