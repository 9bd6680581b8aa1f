// The viewer page: open a photo, ask the server for maps, colour and blend them here.
//
// The server sends each map once, as 8-bit levels on the shown photo's pixels (zero outside the crop
// the model saw; `box` says where that crop is), and the colormaps once, as 256-entry tables. Colour
// and opacity are applied on a canvas as mieruka's overlay does (photo + opacity x (colour - photo),
// only inside the crop), so moving the slider or changing the colormap sends no request.

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  tables: null, // colormap name -> flat Uint8Array of 256 x (r, g, b)
  photo: null, // the server's description of the open photo
  pixels: null, // its RGBA pixels
  result: null, // the last explanation
  levels: null, // per target, per method: Uint8Array of the map's levels
  busy: false,
  again: false,
  painting: false,
};

// ---- talking to the server ----------------------------------------------------------------------

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error(`no answer from the viewer (${error.message}): is mieruka serve still running?`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : `the viewer answered ${response.status} ${response.statusText}`);
  }
  return body;
}

function showError(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = false;
  document.body.dataset.state = "error";
}

function clearError() {
  $("message").hidden = true;
  $("message").textContent = "";
}

function setStatus(text, busy = false) {
  $("status").textContent = text;
  document.body.dataset.state = busy ? "busy" : "ready";
}

const megabytes = (bytes) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 1)} MB`;

// ---- start: what the model offers ---------------------------------------------------------------

async function start() {
  try {
    const [info, tables] = await Promise.all([api("/api/info"), api("/api/colormaps")]);
    state.info = info;
    state.tables = Object.fromEntries(Object.entries(tables).map(([name, rows]) => [name, Uint8Array.from(rows.flat())]));
    describeModel(info);
    fillControls(info);
    await listFolder(info);
    setStatus("Upload a photo to begin.");
  } catch (error) {
    showError(error.message);
  }
}

function describeModel(info) {
  const line = $("model");
  line.textContent = `${info.model} · weights: ${info.weights} · ${info.task} · ${info.device}`;
  if (info.random_weights) {
    const warning = document.createElement("span");
    warning.className = "warning";
    warning.textContent = "  [random weights: its maps mean nothing]";
    line.append(warning);
  }
  $("upload-limit").textContent = `at most ${megabytes(info.max_upload_bytes)}`;
}

function fillControls(info) {
  const methods = $("methods");
  for (const method of info.methods) {
    const label = document.createElement("label");
    label.title = method.summary;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "method";
    box.value = method.name;
    box.checked = method.name === "gradcam";
    label.append(box, ` ${method.name}`);
    if (method.slow) {
      const slow = document.createElement("span");
      slow.className = "slow";
      slow.textContent = " (slow: a pass per channel)";
      label.append(slow);
    }
    methods.append(label);
  }
  for (const layer of info.layers) {
    const auto = layer.name === info.auto_layer;
    const option = new Option(`${layer.name}  ${layer.shape.join("×")}${auto ? "  (automatic)" : ""}`, layer.name);
    option.selected = auto;
    $("layer").append(option);
  }
  const classes = $("classes");
  for (const [index, name] of (info.labels || []).entries()) {
    classes.append(new Option(`${index}`, name));
  }
  $("topk").max = info.max_top_k;
  $("topk").value = Math.min(3, info.max_top_k);
  if (info.task !== "classify") {
    $("what").querySelector("[value=topk]").disabled = true;
    $("topk").disabled = true;
  }
  for (const name of info.colormaps) {
    $("colormap").append(new Option(name, name));
  }
  drawColorbar();
}

async function listFolder(info) {
  if (!info.folder) return;
  const { files, truncated } = await api("/api/files");
  $("folder").hidden = false;
  $("folder-name").textContent = info.folder;
  state.files = files;
  showFiles("");
  $("folder-count").textContent = `${files.length}${truncated ? "+ (the list stops there)" : ""} photo(s)`;
}

function showFiles(filter) {
  const wanted = filter.toLowerCase();
  const list = $("folder-files");
  list.replaceChildren(...state.files.filter((f) => f.toLowerCase().includes(wanted)).slice(0, 2000).map((f) => new Option(f, f)));
}

// ---- photos ---------------------------------------------------------------------------------

async function upload(file) {
  clearError();
  const limit = state.info.max_upload_bytes;
  if (file.size > limit) {
    showError(`${file.name}: ${megabytes(file.size)} is over the upload limit of ${megabytes(limit)} (mieruka serve --max-upload-mb); downscale it first`);
    return;
  }
  const form = new FormData();
  form.append("photo", file, file.name);
  setStatus(`uploading ${file.name}…`, true);
  try {
    await openPhoto(await api("/api/upload", { method: "POST", body: form }));
  } catch (error) {
    showError(error.message);
    setStatus(state.photo ? `showing ${state.photo.name}` : "Upload a photo to begin.");
    document.body.dataset.state = "error";
  }
}

async function pick(path) {
  clearError();
  setStatus(`opening ${path}…`, true);
  try {
    await openPhoto(await api("/api/open", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path }),
    }));
  } catch (error) {
    showError(error.message);
  }
}

async function openPhoto(photo) {
  const image = new Image();
  image.src = photo.url;
  await image.decode();
  const canvas = new OffscreenCanvas(photo.width, photo.height);
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  state.photo = photo;
  state.pixels = context.getImageData(0, 0, photo.width, photo.height).data;
  state.result = null;
  state.levels = null;
  await explain();
}

// ---- maps -----------------------------------------------------------------------------------

function request() {
  const what = new FormData($("controls")).get("what");
  const methods = [...document.querySelectorAll("input[name=method]:checked")].map((box) => box.value);
  return {
    photo: state.photo.id,
    methods,
    layer: $("layer").value || null,
    target: what === "class" ? $("class").value.trim() || null : null,
    top_k: what === "topk" ? Number($("topk").value) : 1,
  };
}

// One request at a time; changes made meanwhile are sent together once it is back.
async function explain() {
  if (!state.photo) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  const asked = request();
  if (asked.methods.length === 0) {
    showError("choose at least one method");
    return;
  }
  state.busy = true;
  clearError();
  setStatus(`computing ${asked.methods.join(", ")} for ${state.photo.name}…`, true);
  try {
    const result = await api("/api/explain", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(asked),
    });
    if (result.photo.id === state.photo.id) {
      state.levels = await Promise.all(
        result.targets.map((_, t) => Promise.all(result.methods.map((m) => levels(result.maps[m][t].png, result.photo)))),
      );
      state.result = result;
      build(result);
      paint();
      setStatus(
        `${result.photo.name}: ${result.methods.join(", ")} at layer ${result.layer} (${result.layout}) in ${result.seconds.toFixed(2)} s`,
        state.again, // still busy when changes made meanwhile are to be sent
      );
    }
  } catch (error) {
    showError(error.message);
  } finally {
    state.busy = false;
    if (state.again) {
      state.again = false;
      explain();
    }
  }
}

// A map's 8-bit levels from its grayscale PNG.
async function levels(url, photo) {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = new OffscreenCanvas(photo.width, photo.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0);
  const rgba = context.getImageData(0, 0, photo.width, photo.height).data;
  const out = new Uint8Array(photo.width * photo.height);
  for (let i = 0; i < out.length; i++) out[i] = rgba[4 * i];
  return out;
}

const percent = (p) => (p === null || p === undefined ? "" : `${(100 * p).toFixed(1)}%`);

function build(result) {
  const predictions = $("predictions");
  predictions.replaceChildren(
    ...result.top5.map((row) => {
      const item = document.createElement("li");
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.max(1, Math.round(80 * row.probability))}px`;
      item.append(`${row.label}  ${percent(row.probability)}`, bar);
      return item;
    }),
  );
  const grid = $("grid");
  grid.replaceChildren();
  if (result.targets.length === 0) {
    grid.textContent = "nothing to explain in this photo (no class passed, no object found)";
  }
  result.targets.forEach((target, t) => {
    const block = document.createElement("section");
    block.className = "target";
    const heading = document.createElement("h2");
    heading.className = "label target-label";
    heading.textContent = target.probability === null ? target.label : `${target.label}  (p = ${target.probability.toFixed(3)})`;
    const row = document.createElement("div");
    row.className = "methods";
    row.style.setProperty("--columns", Math.min(result.methods.length, 4));
    result.methods.forEach((method, m) => {
      const figure = document.createElement("figure");
      figure.dataset.method = method;
      figure.dataset.label = target.label;
      const canvas = document.createElement("canvas");
      canvas.width = result.photo.width;
      canvas.height = result.photo.height;
      canvas.dataset.target = t;
      canvas.dataset.method = m;
      canvas.setAttribute("aria-label", `${method} map of ${target.label}`);
      const caption = document.createElement("figcaption");
      caption.textContent = method;
      const shown = result.maps[method][t];
      if (shown.empty || shown.flat) {
        const note = document.createElement("span");
        note.className = "empty";
        note.textContent = shown.empty
          ? " (empty map: no positive evidence)"
          : " (flat map: the same value everywhere, so it shows no place)";
        caption.append(note);
      }
      figure.append(canvas, caption);
      row.append(figure);
    });
    block.append(heading, row);
    grid.append(block);
  });
}

// Blend every map onto the photo with the chosen colormap and opacity, inside the crop only.
function paint() {
  const result = state.result;
  if (!result || !state.levels) return;
  const table = state.tables[$("colormap").value];
  const alpha = Number($("opacity").value) / 100;
  const { width, height } = result.photo;
  const [x0, y0, x1, y1] = result.box || [0, 0, 0, 0];
  for (const canvas of $("grid").querySelectorAll("canvas")) {
    const map = state.levels[canvas.dataset.target][canvas.dataset.method];
    const out = new ImageData(width, height);
    const rgba = out.data;
    rgba.set(state.pixels);
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = y * width + x;
        const p = 4 * i;
        const c = 3 * map[i];
        rgba[p] = Math.round(rgba[p] + alpha * (table[c] - rgba[p]));
        rgba[p + 1] = Math.round(rgba[p + 1] + alpha * (table[c + 1] - rgba[p + 1]));
        rgba[p + 2] = Math.round(rgba[p + 2] + alpha * (table[c + 2] - rgba[p + 2]));
      }
    }
    canvas.getContext("2d").putImageData(out, 0, 0);
  }
}

function repaint() {
  if (state.painting) return;
  state.painting = true;
  requestAnimationFrame(() => {
    state.painting = false;
    paint();
  });
}

function drawColorbar() {
  const table = state.tables[$("colormap").value];
  const bar = $("colorbar");
  const row = new ImageData(256, 1);
  for (let i = 0; i < 256; i++) row.data.set([table[3 * i], table[3 * i + 1], table[3 * i + 2], 255], 4 * i);
  bar.getContext("2d").putImageData(row, 0, 0);
}

// ---- wiring ---------------------------------------------------------------------------------

$("upload").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) upload(file);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const [file] = event.dataTransfer.files;
  if (file) upload(file);
});
$("folder-filter").addEventListener("input", (event) => showFiles(event.target.value));
$("folder-files").addEventListener("change", (event) => pick(event.target.value));
$("methods").addEventListener("change", explain);
$("layer").addEventListener("change", explain);
for (const radio of document.querySelectorAll("input[name=what]")) radio.addEventListener("change", explain);
$("topk").addEventListener("change", () => {
  $("what").querySelector("[value=topk]").checked = true;
  explain();
});
$("class").addEventListener("change", () => {
  $("what").querySelector("[value=class]").checked = true;
  explain();
});
$("colormap").addEventListener("change", () => {
  drawColorbar();
  repaint();
});
$("opacity").addEventListener("input", () => {
  $("opacity-value").textContent = (Number($("opacity").value) / 100).toFixed(2);
  repaint();
});
$("controls").addEventListener("submit", (event) => event.preventDefault());

start();
