// Upload page: each chosen file is posted on its own to the API, so every file
// gets its own progress bar and its own answer (stored, duplicate, refused).
import { uploadPhoto } from "./api.js";

const form = document.getElementById("upload-form");
const list = document.getElementById("upload-list");
const summary = document.getElementById("upload-summary");
const CONCURRENT = 2;

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
    status.textContent = `${result.status}: ${result.detail || "upload failed"}`;
  }
}

async function run(files) {
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const views = files.map(row);
  let next = 0;
  const counts = { stored: 0, duplicates: 0, failed: 0 };
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
  summary.textContent =
    `${counts.stored} stored, ${counts.duplicates} ${counts.duplicates === 1 ? "duplicate" : "duplicates"}, ${counts.failed} refused.`;
  summary.dataset.done = "true";
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = form.querySelector("input[type=file]");
  const files = Array.from(input.files);
  if (!files.length) return;
  summary.textContent = "";
  delete summary.dataset.done;
  run(files);
  input.value = "";
});
