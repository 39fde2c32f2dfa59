/* Document page: drag-and-drop (or chosen) files are uploaded one by one to POST /api/v1/pages/
   with an XMLHttpRequest (for its upload progress), into this document. Accepted pages get a live
   job row; refused files show the API's `detail` message. A file uploaded before into another
   document (`duplicate_of.other_document` in the answer) is not added: its item links to the
   existing page(s) and offers "Upload anyway", which sends the file again with force=1. */
"use strict";

(function () {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = document.getElementById("file-input");
  const list = document.getElementById("uploads");
  const tbody = document.querySelector("#pages tbody");
  const rowTemplate = document.getElementById("job-row-template");
  const queue = [];
  let busy = false;

  function item(file) {
    const li = document.createElement("li");
    li.className = "upload";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.className = "upload-progress";
    bar.max = 1; bar.value = 0;
    const status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = "waiting";
    li.append(name, bar, status);
    list.prepend(li);
    return { li, bar, status };
  }

  /* Links to pages of an earlier identical upload in other documents, and "Upload anyway". */
  function showElsewhere(view, file, jobs) {
    const box = document.createElement("div");
    box.className = "upload-duplicate";
    const byDocument = new Map();
    for (const job of jobs) {
      const key = job.duplicate_of.document;
      if (!byDocument.has(key)) byDocument.set(key, []);
      byDocument.get(key).push(job.duplicate_of);
    }
    byDocument.forEach((pages) => {
      const line = document.createElement("span");
      line.className = "duplicate-where";
      line.append("Already uploaded: ");
      pages.forEach((where, i) => {
        if (i) line.append(", ");
        const link = document.createElement("a");
        link.className = "duplicate-link";
        link.href = where.web_url;
        link.textContent = "p.\u00a0" + where.page_number;
        line.append(link);
      });
      line.append(" of \u201c" + pages[0].document_name + "\u201d. ");
      box.append(line);
    });
    const again = document.createElement("button");
    again.type = "button";
    again.className = "small upload-anyway";
    again.textContent = "Upload anyway";
    again.title = "Add the file to this document as new page(s) all the same";
    again.addEventListener("click", () => {
      again.disabled = true;
      queue.push({ file, force: true, view });
      drain();
    });
    box.append(again);
    view.li.appendChild(box);
  }

  function fail(view, message) {
    view.li.classList.add("refused");
    view.bar.hidden = true;
    view.status.textContent = message;
    view.status.setAttribute("role", "alert");
  }

  async function addRow(job) {
    if (String(job.document) !== zone.dataset.documentId) return;
    if (tbody.querySelector('.job-row[data-page-id="' + job.page + '"]')) return;
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.dataset.pageId = job.page;
    row.dataset.jobId = job.id;
    row.dataset.state = job.state;
    const link = row.querySelector(".page-link");
    link.href = "/pages/" + job.page + "/";
    link.textContent = "p. …";
    row.querySelector(".filename").textContent = job.filename + (job.frame_index ? " [" + (job.frame_index + 1) + "]" : "");
    tbody.appendChild(row);
    document.getElementById("no-pages").hidden = true;
    QuireJobs.watch(row);
    try {
      const page = await Quire.api(job.page_url);
      link.textContent = "p.\u00a0" + (page.order + 1);
    } catch (e) { link.textContent = "page"; }
  }

  /* Upload `file`; with `force` even when identical to an earlier upload, reusing `view` (the
     list item of the first try) when given. */
  function send(file, force, view) {
    if (view) {
      view.li.classList.remove("accepted", "refused", "duplicate");
      view.li.querySelectorAll(".upload-duplicate, .error-text").forEach((node) => node.remove());
      view.bar.hidden = false;
      view.bar.value = 0;
      view.status.removeAttribute("role");
    } else {
      view = item(file);
    }
    return new Promise((resolve) => {
      const form = new FormData();
      form.append("files", file, file.name);
      form.append("document", zone.dataset.documentId);
      if (force) form.append("force", "1");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", zone.dataset.uploadUrl);
      xhr.setRequestHeader("X-CSRFToken", Quire.csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          view.bar.value = event.loaded / event.total;
          view.status.textContent = Math.round(100 * event.loaded / event.total) + "%";
        }
      });
      xhr.upload.addEventListener("load", () => { view.status.textContent = "processing…"; });
      xhr.addEventListener("load", () => {
        if (xhr.status === 202) {
          const body = JSON.parse(xhr.responseText);
          view.bar.value = 1;
          const elsewhere = body.jobs.filter((j) => j.duplicate_of && j.duplicate_of.other_document);
          const here = body.jobs.filter((j) => !elsewhere.includes(j));
          if (here.length) {
            view.li.classList.add("accepted");
            const n = here.length, dup = here.filter((j) => j.duplicate).length;
            let text = n + (n === 1 ? " page" : " pages") + " queued";
            if (dup) text += " (" + dup + " already uploaded before)";
            view.status.textContent = text;
          } else {
            view.li.classList.add("duplicate");
            view.bar.hidden = true;
            view.status.textContent = "Not added: already uploaded to another document";
          }
          if (elsewhere.length) showElsewhere(view, file, elsewhere);
          for (const problem of body.errors || []) {
            const note = document.createElement("div");
            note.className = "error-text";
            note.textContent = problem.detail;
            view.li.appendChild(note);
          }
          here.forEach(addRow);
        } else {
          fail(view, "Refused: " + Quire.errorDetail(xhr.status, xhr.responseText));
        }
        resolve();
      });
      xhr.addEventListener("error", () => { fail(view, "Upload failed: the server could not be reached"); resolve(); });
      xhr.addEventListener("abort", () => { fail(view, "Upload canceled"); resolve(); });
      view.status.textContent = "uploading";
      xhr.send(form);
    });
  }

  async function drain() {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const next = queue.shift();
      await send(next.file, next.force, next.view);
    }
    busy = false;
  }

  function accept(files) {
    for (const file of files) queue.push({ file, force: false, view: null });
    drain();
  }

  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "dragend"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) accept(event.dataTransfer.files);
  });
  input.addEventListener("change", () => { accept(Array.from(input.files)); input.value = ""; });
  zone.addEventListener("keydown", (event) => {
    if (event.target === zone && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); input.click(); }
  });

  /* Line counts of pages whose job just succeeded. */
  tbody.addEventListener("quire:job", async (event) => {
    if (event.detail.state !== "succeeded") return;
    const row = event.target.closest(".job-row");
    try {
      const page = await Quire.api(event.detail.page_url);
      const cell = row.querySelector(".line-count");
      if (cell) cell.textContent = page.lines.length;
    } catch (e) { /* the count stays blank */ }
  });
})();
