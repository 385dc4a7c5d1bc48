// lcid serve: the page. Talks only to this server's /api (no other request of any kind).
"use strict";

const PROBLEM_NAMES = {
  eddy_current: "Eddy-current distortion",
  motion: "Subject motion",
  low_resolution: "Low resolution",
  few_directions: "Too few directions",
  missing_slices: "Missing or dark slices",
  fov_cutoff: "Brain cut off by the field of view",
  noise: "Noise (low SNR)",
  gibbs_ringing: "Gibbs ringing",
  ghosting: "Ghosting",
  spikes: "Spikes",
  gradient_table: "Gradient table problems",
};
const SEVERITY_WORDS = { none: "fine", mild: "mild", moderate: "moderate", severe: "severe" };

const $ = (id) => document.getElementById(id);
const state = { files: {}, mode: null, session: null, image: null, history: [], nv: null, bvals: [] };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ---------- choosing files ----------
function roleOf(name) {
  const n = name.toLowerCase();
  if (n.endsWith(".nii") || n.endsWith(".nii.gz")) return "dwi";
  if (n.endsWith(".zip")) return "zip";
  if (n.endsWith(".bval")) return "bval";
  if (n.endsWith(".bvec")) return "bvec";
  if (n.endsWith(".json")) return "sidecar";
  if (n.endsWith(".png") || n.endsWith(".jpg") || n.endsWith(".jpeg")) return "image";
  return null;
}

function addFiles(list) {
  for (const file of list) {
    const role = roleOf(file.name);
    if (role === "dwi" || role === "zip" || role === "image") {
      delete state.files.dwi; delete state.files.zip; delete state.files.image;
    }
    if (role) state.files[role] = file;
  }
  const f = state.files;
  state.mode = f.image ? "slice" : f.zip ? "zip" : f.dwi ? "nifti" : null;
  if (state.mode !== "nifti") { delete f.bval; delete f.bvec; delete f.sidecar; }
  renderChosen();
}

function renderChosen() {
  const f = state.files;
  const rows = [];
  const item = (label, file, required) => {
    const status = file ? el("span", { class: "ok" }, "✓ ") : el("span", { class: required ? "missing" : "hint" }, required ? "✗ " : "– ");
    rows.push(el("li", {}, status, `${label}: `, file ? file.name : required ? "missing" : "not given (optional)"));
  };
  if (state.mode === "nifti") {
    item("DWI image", f.dwi, true); item("b-values (.bval)", f.bval, true);
    item("directions (.bvec)", f.bvec, true); item("sidecar (.json)", f.sidecar, false);
  } else if (state.mode === "zip") {
    item("DICOM series (zip)", f.zip, true);
  } else if (state.mode === "slice") {
    item("slice image", f.image, true);
  }
  $("chosen").replaceChildren(...rows);
  const ready = state.mode === "zip" || state.mode === "slice" || (state.mode === "nifti" && f.bval && f.bvec);
  $("run").disabled = !ready;
  $("run").textContent = state.mode === "slice" ? "Ask about this slice" : "Check";
}

// ---------- talking to the server ----------
function post(url, form, onUpload) {
  // XMLHttpRequest rather than fetch: only it reports upload progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "json";
    if (onUpload) xhr.upload.onprogress = (e) => e.lengthComputable && onUpload(e.loaded / e.total);
    xhr.upload.onload = () => onUpload && onUpload(1);
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Error(body.error || `the server answered ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error("the server cannot be reached: is lcid serve still running?"));
    xhr.send(form);
  });
}

function showProgress(text, fraction) {
  $("progress").hidden = false;
  $("progress").classList.toggle("busy", fraction === null);
  if (fraction !== null) $("bar-fill").style.width = `${Math.round(fraction * 100)}%`;
  $("progress-text").textContent = text;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message ? `Could not do it: ${message}` : "";
}

async function run() {
  showError("");
  $("run").disabled = true;
  for (const id of ["results", "slice-result", "viewer-card", "report-card", "chat-card"]) $(id).hidden = true;
  state.history = []; $("chat").replaceChildren();
  if (state.session) fetch(`/api/session/${state.session.id}`, { method: "DELETE" }).catch(() => {});
  state.session = null; state.image = null;
  let timer = null;
  try {
    if (state.mode === "slice") {
      state.image = state.files.image;
      showProgress("Asking the model…", null);
      const form = new FormData();
      form.append("image", state.image);
      form.append("question", "Which problems do you see in this image?");
      if ($("model").value) form.append("model", $("model").value);
      const answer = await post("/api/ask", form);
      showSlice(answer);
    } else {
      const form = new FormData();
      const f = state.files;
      form.append("dwi", state.mode === "zip" ? f.zip : f.dwi);
      if (state.mode === "nifti") {
        form.append("bval", f.bval); form.append("bvec", f.bvec);
        if (f.sidecar) form.append("sidecar", f.sidecar);
      }
      const started = Date.now();
      const result = await post("/api/check", form, (fraction) => {
        if (fraction < 1) showProgress(`Uploading… ${Math.round(fraction * 100)}%`, fraction);
        else if (!timer) {
          const tick = () => showProgress(`Checking for 11 kinds of problems… ${Math.round((Date.now() - started) / 1000)} s`, null);
          tick(); timer = setInterval(tick, 1000);
        }
      });
      showCheck(result);
    }
    $("progress").hidden = true;
  } catch (err) {
    $("progress").hidden = true;
    showError(err.message);
  } finally {
    if (timer) clearInterval(timer);
    renderChosen();
  }
}

// ---------- showing a check ----------
function lightClass(finding) {
  return finding.applicable === false ? "na" : finding.severity;
}

function findingItem(finding) {
  const name = PROBLEM_NAMES[finding.problem] || finding.problem;
  const verdict = finding.applicable === false ? "does not apply" : SEVERITY_WORDS[finding.severity] || finding.severity;
  const head = el("summary", {}, el("i", { class: `light ${lightClass(finding)}` }), el("span", { class: "name" }, name),
    el("span", { class: "sev" }, `${verdict}${finding.detected ? ` (confidence ${Math.round(finding.confidence * 100)}%)` : ""}`));
  const more = el("div", { class: "more" });
  if (finding.explanation) more.append(el("p", {}, finding.explanation));
  const where = finding.where || {};
  const places = [];
  if ((where.volumes || []).length) places.push(`volumes ${where.volumes.join(", ")}`);
  if ((where.slices || []).length) places.push(`slices ${where.slices.join(", ")}`);
  if (places.length) more.append(el("p", { class: "hint" }, `Where: ${places.join("; ")} (counting from 0).`));
  const recs = finding.recommendations || [];
  if (recs.length) {
    const list = el("ul");
    for (const r of recs) {
      const li = el("li", {}, r.action);
      if (r.command) li.append(" ", el("code", {}, r.command));
      if (r.reference) li.append(" ", el("span", { class: "hint" }, `(${r.reference})`));
      list.append(li);
    }
    more.append(el("p", {}, "What to do:"), list);
  }
  const details = el("details", {}, head, more);
  if (finding.detected) details.open = true;
  return el("li", {}, details);
}

function showCheck(result) {
  state.session = result.session;
  state.bvals = result.session.bvals || [];
  const input = result.input || {};
  const shells = (input.shells || []).map((s) => `b=${s.bval} ×${s.count}`).join(", ");
  const vox = (input.voxel_size_mm || []).map((v) => +v.toFixed(2)).join(" × ");
  $("acquisition").textContent = `${(input.shape || []).join(" × ")} voxels of ${vox} mm; ${shells}.`;
  $("warnings").replaceChildren(...(result.warnings || []).map((w) => el("li", {}, w)));
  const order = { severe: 0, moderate: 1, mild: 2, none: 3 };
  const findings = [...result.findings].sort((a, b) =>
    (a.applicable === false) - (b.applicable === false) || order[a.severity] - order[b.severity]);
  $("summary").replaceChildren(...findings.map(findingItem));
  const found = findings.filter((f) => f.detected);
  const counts = ["severe", "moderate", "mild"].map((s) => [s, found.filter((f) => f.severity === s).length]).filter(([, n]) => n);
  $("verdict").textContent = found.length
    ? `${found.length} of ${findings.length} possible problems found (${counts.map(([s, n]) => `${n} ${s}`).join(", ")}). Open a line to read what it means and what to do.`
    : `None of the ${findings.length} problems we look for was found.`;
  const json = new Blob([JSON.stringify(stripSession(result), null, 2)], { type: "application/json" });
  $("dl-findings").href = URL.createObjectURL(json);
  $("dl-report").href = result.session.report_url;
  $("results").hidden = false;
  $("report").src = result.session.report_url;
  $("report-card").hidden = false;
  $("chat-card").hidden = false;
  showViewer(result);
}

function stripSession(result) {
  const copy = { ...result };
  delete copy.session;
  return copy;
}

// ---------- the NiiVue viewer ----------
function flaggedPlaces(findings) {
  const places = [];
  for (const f of findings) {
    if (!f.detected) continue;
    const name = PROBLEM_NAMES[f.problem] || f.problem;
    const where = f.where || {};
    for (const [volume, slice] of where.pairs || []) places.push({ name, volume, slice });
    if (!(where.pairs || []).length) {
      for (const volume of where.volumes || []) places.push({ name, volume, slice: null });
      for (const slice of where.slices || []) places.push({ name, volume: null, slice });
    }
  }
  return places.slice(0, 500);
}

async function showViewer(result) {
  $("viewer-card").hidden = false;
  const places = flaggedPlaces(result.findings);
  const select = $("flagged");
  select.replaceChildren(el("option", { value: "" }, places.length ? `${places.length} flagged: choose one` : "none flagged"));
  places.forEach((p, i) => {
    const parts = [p.name];
    if (p.volume !== null) parts.push(`volume ${p.volume}`);
    if (p.slice !== null) parts.push(`slice ${p.slice}`);
    select.append(el("option", { value: String(i) }, parts.join(", ")));
  });
  select.onchange = () => select.value !== "" && goTo(places[+select.value]);
  const nVolumes = (result.input.shape || [0, 0, 0, 1])[3] || 1;
  $("volume").max = String(nVolumes - 1);
  $("volume").value = "0";
  updateVolumeLabel(0, nVolumes);
  if (!window.niivue) { $("viewer-note").textContent = "The viewer could not load."; return; }
  try {
    if (!state.nv) {
      state.nv = new window.niivue.Niivue({
        backColor: [0, 0, 0, 1], crosshairColor: [1, 0.3, 0.2, 0.7], crosshairWidth: 1, show3Dcrosshair: false,
        loadingText: "loading the scan...",
      });
      await state.nv.attachToCanvas($("viewer"));
    }
    const name = result.session.volume_url.split("/").pop();
    await state.nv.loadVolumes([{ url: result.session.volume_url, name }]);
    state.nv.setSliceType(state.nv.sliceTypeMultiplanar);
    window.lcidViewerReady = true;
  } catch (err) {
    $("viewer-note").textContent = `The viewer cannot show this scan here (${err.message || err}). The findings and report above are complete.`;
  }
}

function updateVolumeLabel(index, total) {
  const b = state.bvals[index];
  $("volume-label").textContent = `volume ${index} of ${total - 1}${b !== undefined ? ` (b=${b})` : ""}`;
}

function setVolume(index) {
  const nv = state.nv;
  $("volume").value = String(index);
  updateVolumeLabel(index, +$("volume").max + 1);
  if (!nv || !nv.volumes.length) return;
  nv.setFrame4D(nv.volumes[0].id, index);
  // Window each volume on its own: b>0 volumes are much darker than the b=0 volume.
  nv.volumes[0].calMinMax(index);
  nv.updateGLVolume();
}

function goTo(place) {
  if (place.volume !== null) setVolume(place.volume);
  const nv = state.nv;
  if (!nv || !nv.volumes.length || place.slice === null) return;
  const dims = nv.volumes[0].hdr.dims; // [ndim, x, y, z, t]
  const frac = nv.vox2frac([Math.floor(dims[1] / 2), Math.floor(dims[2] / 2), place.slice]);
  nv.scene.crosshairPos = frac;
  nv.setSliceType(nv.sliceTypeAxial);
  nv.drawScene();
}

// ---------- a lone slice ----------
function showSlice(answer) {
  $("slice-img").src = URL.createObjectURL(state.image);
  $("slice-answer").textContent = answer.answer;
  const problems = [...(answer.problems || [])].sort((a, b) => b.probability - a.probability);
  // A DWI model scores problems (traffic lights); other models list their top answers (no lights).
  const areProblems = problems.length && problems.every((p) => p.problem in PROBLEM_NAMES);
  $("slice-problems-title").textContent = areProblems ? "Problems, by probability:" : "Other answers the model considered:";
  $("slice-problems").replaceChildren(...problems.map((p) => {
    const level = p.probability >= 0.7 ? "severe" : p.probability >= 0.4 ? "moderate" : p.probability >= 0.2 ? "mild" : "none";
    const light = areProblems ? el("i", { class: `light ${level}` }) : "";
    return el("li", {}, light, el("span", { class: "name" }, PROBLEM_NAMES[p.problem] || p.problem),
      el("span", { class: "sev" }, ` probability ${Math.round(p.probability * 100)}%`));
  }));
  $("slice-result").hidden = false;
  $("chat-card").hidden = false;
}

// ---------- chat ----------
async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("question").value = "";
  $("chat").append(el("li", { class: "q" }, question));
  const pending = el("li", { class: "a pending" }, "thinking…");
  $("chat").append(pending);
  $("ask").disabled = true;
  const form = new FormData();
  form.append("question", question);
  if (state.image) form.append("image", state.image);
  if (state.session) form.append("session", state.session.id);
  if (state.history.length) form.append("history", JSON.stringify(state.history));
  if ($("model").value) form.append("model", $("model").value);
  try {
    const answer = await post("/api/ask", form);
    pending.className = "a";
    pending.textContent = answer.answer;
    state.history.push({ question, answer: answer.answer });
  } catch (err) {
    pending.className = "a error";
    pending.textContent = `No answer: ${err.message}`;
  } finally {
    $("ask").disabled = false;
  }
}

// ---------- wiring ----------
window.lcidViewer = () => state.nv; // for the browser test and the curious
document.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
  drop.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && $("files").click());
  $("files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  $("run").addEventListener("click", run);
  $("ask-form").addEventListener("submit", ask);
  $("volume").addEventListener("input", (e) => setVolume(+e.target.value));
  $("view-multi").addEventListener("click", () => state.nv && state.nv.setSliceType(state.nv.sliceTypeMultiplanar));
  $("view-axial").addEventListener("click", () => state.nv && state.nv.setSliceType(state.nv.sliceTypeAxial));
  fetch("/api/models").then((r) => r.json()).then((m) => {
    $("model").replaceChildren(...m.models.map((name) => el("option", { value: name }, name)));
    if (m.default) $("model").value = m.default;
    $("model-row").hidden = m.models.length < 2;
  }).catch(() => {});
  fetch("/api/health").then((r) => r.json()).then((h) => { $("version").textContent = `lcid ${h.version}, running locally`; });
});
