/* mieruka report: the grid, its sorting and filters, and the large view, from the data embedded in
 * the page (<script id="mieruka-data">; file:// pages cannot fetch local JSON). No framework, no
 * network. Data (written by mieruka/report/data.py):
 *   labels[i]        class names; photos refer to them by index
 *   methods          the run's CAM methods, in order
 *   metrics[]        evaluate's columns {key: "metric|method", metric, method, better}
 *   photos[]         {file, name, rank (by name), view, crop, size, top5: [[label, p]], label, p,
 *                     region, regionKind, centre,
 *                     targets: [{label, p, output, outputs, thumb, heat, centre, empty, flat}],
 *                     metrics: {key: value}, note}
 *   errors[]         {file, name, error}
 */
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("mieruka-data").textContent);
  const labels = data.labels;
  const settings = data.settings || {};
  const photos = data.photos;
  photos.forEach((photo, index) => {
    photo.index = index;
    photo.search = photo.name.toLowerCase();
  });
  const metricColumns = new Map(data.metrics.map((column) => [column.key, column]));
  const state = {
    search: "",
    label: -1,
    sort: "confidence",
    descending: true,
    outside: false,
    confident: data.defaults.confident,
    share: data.defaults.outside,
    metric: "",
    op: "ge",
    value: null,
    page: 0,
    size: 120,
  };
  let shown = []; // the photos that pass the filters, in the chosen order
  let opened = -1; // the position in `shown` of the photo in the large view
  const chips = new Map(); // label -> its button in the summary

  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  const viewer = $("viewer");

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key === "style") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // a path relative to the page as a URL: "#", "?" and "%" are letters in file names, not URL syntax
  const url = (path) => path.split("/").map(encodeURIComponent).join("/");
  const percent = (p) => (p === null || p === undefined ? "–" : (100 * p).toFixed(1) + "%");
  const number = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(3));
  const first = (values) => (values ? Object.values(values)[0] : undefined);

  function outsideRegion(photo) {
    return (
      photo.p !== null && photo.p >= state.confident &&
      photo.region !== null && photo.region !== undefined && photo.region < state.share
    );
  }

  // ---- the summary --------------------------------------------------------------------------------

  function summary() {
    const title = data.title || "report";
    $("title").textContent = title;
    const explained = photos.length - data.nothing;
    const parts = [
      [photos.length, photos.length === 1 ? "photo" : "photos"],
      [data.errors.length, data.errors.length === 1 ? "error" : "errors"],
    ];
    const stats = $("stats");
    stats.replaceChildren();
    parts.forEach(([count, word], i) => {
      if (i) stats.append(" · ");
      stats.append(element("b", { text: count.toLocaleString("en-US"), "data-count": word.replace(/s$/, "") }), " " + word);
    });
    if (data.nothing) stats.append(` · ${explained} explained, ${data.nothing} with nothing to explain`);
    if (settings.weights === "random") {
      $("warning").hidden = false;
      $("warning").textContent =
        "This run used random weights (--random-weights): its predictions and maps mean nothing.";
    }
    const rows = [
      ["model", settings.model],
      ["weights", settings.weights],
      ["layer", settings.layer],
      ["method", (settings.methods || []).join(", ")],
      ["task", settings.task],
      ["target", settings.target],
      ["top-k", settings.top_k],
      ["style", settings.style && `${settings.style}, ${settings.colormap}, alpha ${settings.alpha}`],
      ["photos", settings.photos],
      ["when", settings.created],
      ["versions", settings.versions && Object.entries(settings.versions).map(([k, v]) => `${k} ${v}`).join(", ")],
    ];
    const list = $("settings");
    for (const [name, value] of rows) {
      if (value === undefined || value === null || value === "") continue;
      list.append(element("dt", { text: name }), element("dd", { text: String(value), "data-setting": name }));
    }
    if (!settings.versions) list.append(element("dt", { text: "versions" }), element("dd", { text: "not recorded" }));
    const counts = $("counts");
    for (const [label, count] of data.counts) {
      const button = element("button", { type: "button", "data-label": labels[label], "aria-pressed": "false" },
        element("span", { className: "name", text: labels[label] }), " ", element("span", { className: "n", text: String(count) }));
      button.addEventListener("click", () => {
        state.label = state.label === label ? -1 : label;
        $("label").value = String(state.label);
        update();
      });
      chips.set(label, button);
      counts.append(element("li", {}, button));
    }
    if (!data.counts.length) counts.append(element("li", { className: "note", text: "no labels" }));
    if (data.errors.length) {
      $("errors-panel").hidden = false;
      $("error-count").textContent = String(data.errors.length);
      for (const error of data.errors) {
        const prefix = error.file + ": ";
        const why = error.error.startsWith(prefix) ? error.error.slice(prefix.length) : error.error;
        $("errors").append(element("li", { "data-file": error.name },
          element("span", { className: "file", text: error.name }), ": ", element("span", { className: "why", text: why })));
      }
    }
  }

  // ---- the controls ---------------------------------------------------------------------------------

  function controls() {
    const label = $("label");
    label.append(element("option", { value: "-1", text: `All labels (${photos.length})` }));
    for (const [index, count] of data.counts) {
      label.append(element("option", { value: String(index), text: `${labels[index]} (${count})` }));
    }
    const sort = $("sort");
    sort.append(
      element("option", { value: "confidence", text: "Confidence" }),
      element("option", { value: "name", text: "File name" }),
      element("option", { value: "region", text: "Energy in the main region" }),
    );
    for (const column of data.metrics) {
      sort.append(element("option", { value: "metric:" + column.key, text: metricName(column) }));
    }
    if (data.metrics.length) {
      $("metric-filter").hidden = false;
      const key = $("metric-key");
      for (const column of data.metrics) key.append(element("option", { value: column.key, text: metricName(column) }));
      state.metric = data.metrics[0].key;
    }
    $("confident").value = state.confident;
    $("share").value = state.share;
    let typing = 0;
    $("search").addEventListener("input", (event) => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.search = event.target.value.trim().toLowerCase(); update(); }, 120);
    });
    label.addEventListener("change", () => { state.label = Number(label.value); update(); });
    sort.addEventListener("change", () => {
      state.sort = sort.value;
      state.descending = !(state.sort === "name" || state.sort === "region" || lowerIsBetterFirst(state.sort));
      update();
    });
    $("order").addEventListener("click", () => { state.descending = !state.descending; update(); });
    $("outside").addEventListener("change", (event) => { state.outside = event.target.checked; update(); });
    $("confident").addEventListener("change", (event) => { state.confident = Number(event.target.value); update(); });
    $("share").addEventListener("change", (event) => { state.share = Number(event.target.value); update(); });
    $("metric-key").addEventListener("change", (event) => { state.metric = event.target.value; update(); });
    $("metric-op").addEventListener("change", (event) => { state.op = event.target.value; update(); });
    $("metric-value").addEventListener("input", (event) => {
      state.value = event.target.value === "" ? null : Number(event.target.value);
      update();
    });
    $("prev").addEventListener("click", () => { state.page -= 1; render(); });
    $("next").addEventListener("click", () => { state.page += 1; render(); });
    $("page-size").addEventListener("change", (event) => { state.size = Number(event.target.value); state.page = 0; render(); });
    grid.addEventListener("click", (event) => {
      const card = event.target.closest(".card");
      if (card) openViewer(Number(card.dataset.position));
    });
    grid.addEventListener("keydown", (event) => {
      const card = event.target.closest(".card");
      if (card && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        openViewer(Number(card.dataset.position));
      }
    });
  }

  function metricName(column) {
    const better = column.better ? ` (${column.better} is better)` : "";
    return `${column.metric}, ${column.method}${better}`;
  }

  function lowerIsBetterFirst(sort) {
    // a metric sorts worst first: that is where to look
    const column = sort.startsWith("metric:") ? metricColumns.get(sort.slice(7)) : null;
    return column ? column.better === "higher" : false;
  }

  // ---- filter, sort, page -----------------------------------------------------------------------------

  function sortValue(photo) {
    if (state.sort === "confidence") return photo.p;
    if (state.sort === "region") return photo.region;
    if (state.sort.startsWith("metric:")) return photo.metrics[state.sort.slice(7)];
    return null;
  }

  function update() {
    const search = state.search;
    shown = photos.filter((photo) => {
      if (state.label >= 0 && photo.label !== state.label) return false;
      if (search && !photo.search.includes(search)) return false;
      if (state.outside && !outsideRegion(photo)) return false;
      if (state.value !== null && state.metric) {
        const value = photo.metrics[state.metric];
        if (value === undefined || value === null) return false;
        if (state.op === "ge" ? value < state.value : value > state.value) return false;
      }
      return true;
    });
    const sign = state.descending ? -1 : 1;
    if (state.sort === "name") {
      shown.sort((a, b) => sign * (a.rank - b.rank)); // ranks by name, numbers by value (data.py)
    } else {
      const keyed = shown.map((photo) => [sortValue(photo), photo]);
      keyed.sort(([a, pa], [b, pb]) => {
        const missingA = a === null || a === undefined, missingB = b === null || b === undefined;
        if (missingA || missingB) return missingA - missingB || pa.index - pb.index; // no value: last
        return sign * (a - b) || pa.index - pb.index;
      });
      shown = keyed.map(([, photo]) => photo);
    }
    const pressed = document.querySelector('#counts button[aria-pressed="true"]');
    const chip = state.label >= 0 ? chips.get(state.label) : null;
    if (pressed !== chip) {
      if (pressed) pressed.setAttribute("aria-pressed", "false");
      if (chip) chip.setAttribute("aria-pressed", "true");
    }
    $("order").textContent = state.sort === "name"
      ? (state.descending ? "Z → A" : "A → Z")
      : (state.descending ? "high first" : "low first");
    state.page = 0;
    render();
  }

  function render() {
    const pages = Math.max(1, Math.ceil(shown.length / state.size));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * state.size;
    const end = Math.min(shown.length, start + state.size);
    const fragment = document.createDocumentFragment();
    for (let position = start; position < end; position += 1) fragment.append(card(shown[position], position));
    grid.replaceChildren(fragment);
    const status = $("shown");
    status.dataset.count = String(shown.length);
    const count = (n) => n.toLocaleString("en-US");
    const range = shown.length > state.size ? `, ${count(start + 1)}–${count(end)} shown` : "";
    status.textContent = shown.length === photos.length
      ? `${count(shown.length)} photos${range}`
      : `${count(shown.length)} of ${count(photos.length)} photos match${range}`;
    $("page").textContent = `page ${state.page + 1} of ${pages}`;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    $("empty").hidden = shown.length > 0;
    document.body.dataset.ready = "true";
  }

  function card(photo, position) {
    const target = photo.targets[0];
    const method = data.methods[0];
    const picture = target ? target.thumb || (target.outputs && target.outputs[method]) || target.output : photo.view;
    const thumb = element("div", { className: "thumb" },
      picture
        ? element("img", { src: url(picture), alt: photo.name, loading: "lazy", decoding: "async" })
        : element("span", { className: "none", text: photo.note || "no picture" }));
    const meta = element("div", { className: "meta" },
      element("div", { className: "name", text: photo.name, title: photo.file }));
    if (target) {
      meta.append(element("div", { className: "headline" },
        element("span", { className: "label", text: labels[target.label], title: labels[target.label] }),
        element("span", { className: "prob", text: percent(target.p) })));
      const noPlace = target.empty && target.empty[method] ? "empty map" : target.flat && target.flat[method] ? "flat map" : "";
      if (noPlace) meta.append(element("div", { className: "note", text: `${noPlace}: it shows no place` }));
    } else {
      meta.append(element("div", { className: "note", text: photo.note || "nothing explained" }));
    }
    if (photo.top5) {
      const list = element("ol", { className: "top5", "aria-label": "top 5" });
      for (const [label, p] of photo.top5) {
        list.append(element("li", {}, element("span", { text: labels[label] }), element("span", { text: percent(p) })));
      }
      meta.append(list);
    }
    const how = element("div", { className: "how", text: `${data.methods.join(", ")} · ${settings.layer || ""}` });
    if (outsideRegion(photo)) {
      how.append(" ", element("span", { className: "badge", title: "confident, little energy in the main region",
        text: photo.regionKind === "box" ? "outside the box" : "off-centre" }));
    }
    meta.append(how);
    return element("li", {
      className: "card", tabindex: "0", "data-position": String(position), "data-name": photo.name,
      "data-label": target ? labels[target.label] : "", "data-p": target && target.p !== null ? String(target.p) : "",
    }, thumb, meta);
  }

  // ---- the large view -------------------------------------------------------------------------------

  function openViewer(position) {
    if (position < 0 || position >= shown.length) return;
    opened = position;
    const photo = shown[position];
    $("viewer-title").textContent = photo.name;
    $("viewer-prev").disabled = position === 0;
    $("viewer-next").disabled = position === shown.length - 1;
    const layers = $("layers");
    layers.replaceChildren();
    const methods = photo.targets.length ? Object.keys(photo.targets[0].outputs) : [];
    layers.style.gridTemplateColumns = `repeat(${Math.max(1, methods.length)}, minmax(0, 1fr))`;
    let stacked = 0;
    const stack = (...children) => {
      const node = element("div", { className: "stack" }, ...children);
      if (photo.size) node.style.setProperty("--aspect", String(photo.size[0] / photo.size[1]));
      return node;
    };
    for (const target of photo.targets) {
      for (const method of methods) {
        const heat = target.heat[method];
        const figure = element("figure", { className: "layer", "data-method": method, "data-label": labels[target.label] });
        if (photo.view && heat && photo.crop) {
          const [x0, y0, x1, y1] = photo.crop;
          figure.append(stack(
            element("img", { className: "photo", src: url(photo.view), alt: photo.name }),
            element("img", { className: "heat", src: url(heat), alt: "", style: {
              left: 100 * x0 + "%", top: 100 * y0 + "%", width: 100 * (x1 - x0) + "%", height: 100 * (y1 - y0) + "%",
            } })));
          stacked += 1;
        } else if (target.outputs[method] || target.output) {
          figure.append(element("div", { className: "picture" },
            element("img", { src: url(target.outputs[method] || target.output), alt: photo.name })),
          element("div", { className: "plain", text: "the picture as drawn (explain with --report for the opacity slider)" }));
        } else {
          figure.append(element("div", { className: "plain", text: "no picture: the run wrote maps only" }));
        }
        const centre = target.centre ? target.centre[method] : null;
        const empty = target.empty && target.empty[method];
        const flat = target.flat && target.flat[method];
        figure.append(element("figcaption", {
          text: `${labels[target.label]} ${percent(target.p)} · ${method}` +
            (centre !== null && centre !== undefined ? ` · centre ${number(centre)}` : "") +
            (empty ? " · empty map" : flat ? " · flat map" : ""),
        }));
        layers.append(figure);
      }
    }
    if (!photo.targets.length) {
      layers.append(element("figure", { className: "layer" },
        photo.view ? stack(element("img", { className: "photo", src: url(photo.view), alt: photo.name })) : null,
        element("figcaption", { text: photo.note || "nothing explained" })));
    }
    $("opacity").disabled = stacked === 0;
    facts(photo);
    if (!viewer.open) viewer.showModal();
  }

  function facts(photo) {
    const aside = $("facts");
    aside.replaceChildren(element("h3", { text: "Photo" }), element("div", { className: "path", text: photo.file }));
    if (photo.top5) {
      const table = element("table", { "aria-label": "top 5" });
      for (const [label, p] of photo.top5) {
        table.append(element("tr", {}, element("td", { text: labels[label] }), element("td", { className: "num", text: percent(p) })));
      }
      aside.append(element("h3", { text: "Top 5" }), table);
    }
    const region = photo.regionKind === "box" ? "energy in the box" : "energy in the centre";
    if (photo.region !== null && photo.region !== undefined) {
      aside.append(element("h3", { text: "Main region" }),
        element("div", { text: `${region}: ${number(photo.region)}` + (outsideRegion(photo) ? " (flagged)" : "") }));
    }
    const keys = Object.keys(photo.metrics);
    if (keys.length) {
      const table = element("table", { "aria-label": "evaluation" });
      for (const key of keys) {
        const column = metricColumns.get(key);
        table.append(element("tr", {}, element("td", { text: column ? `${column.metric}, ${column.method}` : key }),
          element("td", { className: "num", text: number(photo.metrics[key]) })));
      }
      aside.append(element("h3", { text: "Evaluation" }), table);
    }
    if (photo.targets.length) {
      aside.append(element("h3", { text: "Pictures" }));
      for (const target of photo.targets) {
        for (const [method, path] of Object.entries(target.outputs)) {
          if (!path) continue;
          aside.append(element("div", {}, element("a", { href: url(path), target: "_blank", text: `${labels[target.label]} · ${method}` })));
        }
        if (target.output && !Object.values(target.outputs).includes(target.output)) {
          aside.append(element("div", {}, element("a", { href: url(target.output), target: "_blank", text: `${labels[target.label]} · all methods` })));
        }
      }
    }
  }

  function viewerControls() {
    const opacity = $("opacity");
    const start = typeof settings.alpha === "number" ? settings.alpha : 0.5;
    const setOpacity = (value) => {
      viewer.style.setProperty("--heat-opacity", String(value));
      $("opacity-value").textContent = Number(value).toFixed(2);
    };
    opacity.value = String(start);
    setOpacity(start);
    opacity.addEventListener("input", () => setOpacity(opacity.value));
    $("viewer-close").addEventListener("click", () => viewer.close());
    $("viewer-prev").addEventListener("click", () => openViewer(opened - 1));
    $("viewer-next").addEventListener("click", () => openViewer(opened + 1));
    viewer.addEventListener("keydown", (event) => {
      if (event.target === opacity) return; // the arrows move the slider there
      if (event.key === "ArrowLeft") openViewer(opened - 1);
      if (event.key === "ArrowRight") openViewer(opened + 1);
    });
    viewer.addEventListener("click", (event) => { if (event.target === viewer) viewer.close(); });
  }

  summary();
  controls();
  viewerControls();
  update();
  performance.mark("mieruka:ready");
})();
