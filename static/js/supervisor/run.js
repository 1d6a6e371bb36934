// A training run's page, live: polls the job API (GET /api/v1/jobs/{id}/) and
// shows step, phase, epoch and loss, the loss of every epoch so far (the job's
// progress.losses, however late the page was opened), the log tail and the
// state; when the job finishes the page reloads once to list its versions.

const POLL_MS = 1500;
const live = document.getElementById("live");
const url = live.dataset.jobUrl;
const $ = (id) => document.getElementById(id);
// epoch -> loss: the job's whole history (progress.losses, kept by the worker's every
// epoch report), and the live epoch on top.
const losses = new Map();
let finished = live.dataset.finished === "true";

// Epoch labels and dots thin out on long runs: about ten labels, dots up to 60 epochs.
function drawLoss() {
  const svg = $("loss-chart");
  const points = [...losses.entries()].sort((a, b) => a[0] - b[0]);
  $("loss-empty").hidden = points.length > 0;
  if (points.length < 1) { svg.innerHTML = ""; svg.dataset.points = "0"; return; }
  const w = 1040, h = 200, left = 50, right = 12, top = 12, bottom = 24;
  const ys = points.map((p) => p[1]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const first = points[0][0], last = points[points.length - 1][0];
  const x = (e) => left + (last > first ? ((e - first) / (last - first)) * (w - left - right) : (w - left - right) / 2);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  const poly = points.map(([e, v]) => `${x(e).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const ticks = [lo, (lo + hi) / 2, hi].map((v) =>
    `<line class="axis" x1="${left}" x2="${w}" y1="${y(v)}" y2="${y(v)}" stroke-dasharray="2 3"/>` +
    `<text x="${left - 6}" y="${y(v)}" text-anchor="end" dominant-baseline="middle">${v.toPrecision(3)}</text>`).join("");
  const every = Math.max(1, Math.ceil((last - first + 1) / 10));
  const labels = points.filter(([e]) => ((e - first) % every === 0 && last - e >= every / 2) || e === last)
    .map(([e]) => `<text x="${x(e)}" y="${h - 6}" text-anchor="middle">${e}</text>`).join("");
  const dots = points.length > 60 ? "" : points.map(([e, v]) =>
    `<circle cx="${x(e)}" cy="${y(v)}" r="3" fill="#c2410c"><title>epoch ${e}: loss ${v.toFixed(4)}</title></circle>`).join("");
  svg.innerHTML = `${ticks}${labels}<polyline points="${poly}" stroke="#c2410c"/>${dots}`;
  svg.dataset.points = String(points.length);
}

function show(job) {
  const p = job.progress || {};
  $("run-state").textContent = job.state.charAt(0).toUpperCase() + job.state.slice(1);
  $("run-state").className = `state ${job.state}`;
  $("step").textContent = `${job.progress_step} / ${job.progress_total || "?"}`;
  $("phase").textContent = p.phase || "—";
  $("epoch").textContent = p.epoch == null ? "—" : `${p.epoch}${p.epochs ? ` / ${p.epochs}` : ""}`;
  $("loss").textContent = typeof p.loss === "number" ? p.loss.toFixed(4) : "—";
  const share = job.progress_total ? Math.min(100, (100 * job.progress_step) / job.progress_total) : 0;
  $("bar").style.width = `${job.state === "succeeded" ? 100 : share}%`;
  $("log").textContent = job.log_tail || "(nothing logged yet)";
  $("log").scrollTop = $("log").scrollHeight;
  $("job-error").hidden = !job.error;
  $("job-error").textContent = job.error || "";
  $("cancel-form").hidden = ["succeeded", "failed", "cancelled"].includes(job.state);
  if (Array.isArray(p.losses)) p.losses.forEach((v, i) => { if (typeof v === "number") losses.set(i + 1, v); });
  if (typeof p.epoch === "number" && typeof p.loss === "number") losses.set(p.epoch, p.loss);
  drawLoss();
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function getJob() {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const body = await response.json().catch(() => null);
    const message = response.ok ? "" : (body && body.detail) || `the server answered ${response.status}`;
    return { ok: response.ok, body, message };
  } catch {
    return { ok: false, body: null, message: "the server could not be reached; retrying" };
  }
}

async function poll() {
  const r = await getJob();
  if (r.ok && r.body) {
    show(r.body);
    const done = ["succeeded", "failed", "cancelled"].includes(r.body.state);
    if (done && !finished) { finished = true; window.location.reload(); return; }
    if (done) return;
  } else {
    $("updated").textContent = r.message || "could not read the job";
  }
  setTimeout(poll, POLL_MS);
}

poll();
