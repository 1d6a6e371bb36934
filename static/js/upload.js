// Upload page: each chosen (or dropped) file is posted on its own to the API, so
// every file gets its own progress bar and its own answer (stored, duplicate,
// refused) in words; the summary counts every batch sent from this page.
import { uploadPhoto } from "./api.js";

const form = document.getElementById("upload-form");
const list = document.getElementById("upload-list");
const summary = document.getElementById("upload-summary");
const button = form.querySelector("button[type=submit]");
const drop = document.getElementById("drop-zone");
const CONCURRENT = 2;
const totals = { stored: 0, duplicates: 0, failed: 0, batches: 0 };
let sending = 0;

// What a refusal means, in words: the server's own sentence follows.
const REASONS = {
  0: "Not sent",
  400: "Refused",
  403: "Not allowed",
  413: "Too large",
  415: "Not a photo this app takes",
  500: "The server failed",
};

function row(file) {
  const li = document.createElement("li");
  li.className = "queued";
  li.dataset.filename = file.name;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  const status = document.createElement("span");
  status.className = "status";
  status.textContent = "waiting";
  li.append(name, bar, status);
  list.append(li);
  return { li, bar, status };
}

function show(view, result) {
  const { li, bar, status } = view;
  bar.value = 100;
  if (result.status === 201) {
    const photo = result.photo;
    li.className = "done";
    status.innerHTML = "";
    const link = document.createElement("a");
    link.href = `/photos/${photo.id}/`;
    link.textContent = `stored as photo ${photo.id}`;
    status.append(link);
    if (photo.near_duplicate_of) {
      status.append(` (near-duplicate of photo ${photo.near_duplicate_of})`);
    }
  } else if (result.status === 409) {
    li.className = "duplicate";
    status.textContent = result.detail;
    if (result.photo_id) {
      const link = document.createElement("a");
      link.href = `/photos/${result.photo_id}/`;
      link.textContent = "open it";
      status.append(" ", link);
    }
  } else {
    li.className = "failed";
    li.dataset.status = String(result.status);
    const reason = REASONS[result.status] || REASONS[Math.floor(result.status / 100) * 100] || "Refused";
    status.textContent = `${reason}: ${result.detail || "the upload failed"}`;
  }
}

function plural(n, one, many) { return `${n} ${n === 1 ? one : many}`; }

function showSummary() {
  const t = totals;
  const text = `${t.stored} stored, ${plural(t.duplicates, "duplicate", "duplicates")}, ${t.failed} refused.`;
  summary.textContent = t.batches > 1 ? `${text} (all ${t.batches} batches sent from this page)` : text;
}

async function run(files) {
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const views = files.map(row);
  let next = 0;
  const counts = totals;
  async function worker() {
    while (next < files.length) {
      const i = next++;
      const view = views[i];
      view.li.className = "sending";
      view.status.textContent = "uploading…";
      const result = await uploadPhoto({
        endpoint: form.dataset.endpoint,
        inspection: form.dataset.inspection,
        file: files[i],
        csrf,
        onProgress: (fraction) => { view.bar.value = Math.round(fraction * 100); },
      });
      show(view, result);
      if (result.status === 201) counts.stored += 1;
      else if (result.status === 409) counts.duplicates += 1;
      else counts.failed += 1;
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENT, files.length) }, worker));
}

async function send(files) {
  if (!files.length) return;
  totals.batches += 1;
  sending += 1;
  button.disabled = true;
  button.textContent = "Sending…";
  delete summary.dataset.done;
  summary.textContent = `Sending ${plural(files.length, "photo", "photos")}…`;
  try {
    await run(files);
  } finally {
    sending -= 1;
    if (!sending) {
      button.disabled = false;
      button.textContent = "Upload";
      showSummary();
      summary.dataset.done = "true";
    }
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = form.querySelector("input[type=file]");
  const files = Array.from(input.files);
  if (!files.length) return;
  send(files);
  input.value = "";
});

// Drag and drop: anywhere on the drop zone; folders' files come as a list too.
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  send(Array.from(e.dataTransfer.files));
});
// A file dropped beside the zone would open in the tab and leave the page.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
