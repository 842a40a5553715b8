// The demo page: draw or upload a digit, transform it, and compare the models.
// Plain browser JavaScript, no build step, no dependencies; it talks only to this
// service's own API (POST /classify, /rotate, /orbit; GET /models, /groups/{name}, /readyz).
"use strict";

(() => {
  const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const GROUPS = ["C4", "C8", "D4"];
  const PAD_INK = "#111";
  const PAD_PAPER = "#fff";
  const PAD_STROKE = 24; // px on the 280 px pad: about MNIST's pen width (a tenth of the digit's height)

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "title") {
        node.setAttribute(key, value);
      } else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  };

  // -- state -----------------------------------------------------------------
  const state = {
    input: null, // {blob, filename, source: "draw" | "upload" | "sample"} or null (nothing to classify)
    group: "C8",
    groupInfo: null, // GET /groups/{name}
    transform: { kind: "element", element: 0, angle: 0 }, // kind: "element" | "angle"
    models: [], // GET /models
    upright: null, // the upright 28x28 image (an <img>) from /orbit, for the orbit thumbnails
    orbit: null, // the last /orbit response
    prior: "none", // orientation_prior: "none" | "upright"
    ready: false,
  };

  // -- API --------------------------------------------------------------------
  class ApiError extends Error {
    constructor(title, detail, status) {
      super(`${title}: ${detail}`);
      this.title = title;
      this.detail = detail;
      this.status = status;
    }
  }

  // Fetch and decode; every failure becomes an ApiError with words a person can read.
  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError("Service unreachable", "the request did not reach the service; is it still running?", 0);
    }
    if (response.ok) return response;
    let title = `HTTP ${response.status}`;
    let detail = response.statusText || "the request failed";
    try {
      const problem = await response.json(); // RFC 9457 application/problem+json
      title = problem.title || title;
      detail = problem.detail || detail;
      if (Array.isArray(problem.errors) && problem.errors.length) {
        detail += " (" + problem.errors.map((e) => e.msg || e.message || JSON.stringify(e)).join("; ") + ")";
      }
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(title, detail, response.status);
  }

  const getJson = async (path) => (await api(path)).json();

  function transformQuery() {
    const t = state.transform;
    if (t.kind === "angle") return t.angle ? `angle=${t.angle}` : "";
    return t.element ? `group=${state.group}&element=${t.element}` : "";
  }

  function form() {
    const body = new FormData();
    body.append("file", state.input.blob, state.input.filename);
    return body;
  }

  // Every change bumps a channel's version at once (before any request goes out),
  // and an answer is shown only if no change came after the request it answers:
  // the page never shows a stale answer as current. A newer request also aborts
  // the older one, so dragging the slider or drawing fast makes no backlog.
  const versions = { classify: 0, orbit: 0 };
  function invalidate(channels, busy = Boolean(state.input)) {
    for (const channel of channels) {
      versions[channel] += 1;
      if (!busy) continue; // nothing will be asked: keep the page as it is
      if (channel === "classify") setPanelsState("loading");
      if (channel === "orbit") $("orbit").dataset.state = "loading";
    }
  }
  const inflight = new Map();
  async function latest(channel, run) {
    inflight.get(channel)?.abort();
    const controller = new AbortController();
    inflight.set(channel, controller);
    try {
      return await run(controller.signal);
    } catch (error) {
      if (error.name === "AbortError") return undefined;
      throw error;
    } finally {
      if (inflight.get(channel) === controller) inflight.delete(channel);
    }
  }

  // -- errors -----------------------------------------------------------------
  function showError(error) {
    const apiError = error instanceof ApiError ? error : new ApiError("Something went wrong", String(error), 0);
    $("error-title").textContent = apiError.title + ":";
    $("error-detail").textContent = apiError.detail;
    $("error").hidden = false;
  }
  const hideError = () => ($("error").hidden = true);

  // -- the drawing pad ----------------------------------------------------------
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  let drawing = false;
  let inked = false;
  let last = null;

  function clearPad() {
    ctx.fillStyle = PAD_PAPER;
    ctx.fillRect(0, 0, pad.width, pad.height);
    inked = false;
  }

  function padPoint(event) {
    const box = pad.getBoundingClientRect();
    return { x: ((event.clientX - box.left) * pad.width) / box.width, y: ((event.clientY - box.top) * pad.height) / box.height };
  }

  function stroke(from, to) {
    ctx.strokeStyle = PAD_INK;
    ctx.lineWidth = PAD_STROKE;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    if (state.input && state.input.source !== "draw") clearPad(); // a new drawing replaces an upload
    drawing = true;
    inked = true;
    last = padPoint(event);
    stroke(last, last);
    pad.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const point = padPoint(event);
    stroke(last, point);
    last = point;
  });
  const endStroke = () => {
    if (!drawing) return;
    drawing = false;
    invalidate(["classify", "orbit"], true); // the answers on screen are for the drawing before this stroke
    pad.toBlob((blob) => setInput({ blob, filename: "drawing.png", source: "draw" }), "image/png");
  };
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  // Show an uploaded or sample image on the pad, fitted and centred.
  function showOnPad(blob, pixelated) {
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.onload = () => {
      clearPad();
      const scale = Math.min(pad.width / image.width, pad.height / image.height);
      const w = image.width * scale;
      const h = image.height * scale;
      ctx.imageSmoothingEnabled = !pixelated;
      ctx.drawImage(image, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
      ctx.imageSmoothingEnabled = true;
      URL.revokeObjectURL(url);
    };
    image.onerror = () => {
      // The browser cannot show it (e.g. TIFF, or not an image at all); the service will say which.
      clearPad();
      URL.revokeObjectURL(url);
    };
    image.src = url;
  }

  $("clear").addEventListener("click", () => {
    invalidate(["classify", "orbit"]);
    clearPad();
    $("upload").value = "";
    setInput(null);
  });

  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (!file) return;
    invalidate(["classify", "orbit"], true);
    showOnPad(file, false);
    setInput({ blob: file, filename: file.name, source: "upload" });
  });

  function buildSamples() {
    const row = $("samples");
    for (const digit of DIGITS) {
      const button = el("button", { type: "button", title: `an MNIST test ${digit}`, "aria-label": `sample digit ${digit}` }, [
        el("img", { src: `/static/sample-${digit}.png`, alt: "" }),
      ]);
      button.addEventListener("click", async () => {
        invalidate(["classify", "orbit"], true);
        try {
          const blob = await (await api(`/static/sample-${digit}.png`)).blob();
          $("upload").value = "";
          showOnPad(blob, true);
          setInput({ blob, filename: `sample-${digit}.png`, source: "sample" });
        } catch (error) {
          showError(error);
        }
      });
      row.append(button);
    }
  }

  // -- transform controls -------------------------------------------------------
  function elementLabel(element) {
    const degrees = `${Math.round(element.degrees * 100) / 100}°`;
    return element.reflection ? `↔ ${degrees}` : degrees;
  }
  function elementTitle(element) {
    const turn = element.degrees ? `rotate ${element.degrees}° counter-clockwise` : "no rotation";
    return element.reflection ? `mirror left-right, then ${turn}` : turn;
  }

  async function loadGroup(name) {
    const info = await getJson(`/groups/${encodeURIComponent(name)}`);
    state.group = info.name;
    state.groupInfo = info;
    const box = $("elements");
    box.replaceChildren();
    for (const element of info.elements) {
      const button = el("button", {
        type: "button",
        text: elementLabel(element),
        title: `${info.name} element ${element.index}: ${elementTitle(element)}`,
        "data-element": String(element.index),
        "aria-pressed": "false",
      });
      button.addEventListener("click", () => setTransform({ kind: "element", element: element.index }));
      box.append(button);
    }
    $("orbit-group").textContent = info.name;
  }

  function renderTransformControls() {
    const t = state.transform;
    for (const button of $("elements").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(t.kind === "element" && Number(button.dataset.element) === t.element));
    }
    const angle = t.kind === "angle" ? t.angle : (state.groupInfo?.elements[t.element]?.degrees ?? 0);
    $("angle").value = String(Math.round(angle) % 360);
    $("angle-value").textContent = `${t.kind === "angle" ? t.angle : Math.round(angle * 100) / 100}°`;
    $("transform-label").textContent = transformLabel();
    for (const cell of $("orbit").querySelectorAll(".orbit-cell")) {
      cell.classList.toggle("current", t.kind === "element" && Number(cell.dataset.element) === t.element);
    }
  }

  function transformLabel() {
    const t = state.transform;
    if (t.kind === "angle") return t.angle ? `free angle, ${t.angle}° counter-clockwise` : "identity";
    const element = state.groupInfo?.elements[t.element];
    if (!element || t.element === 0) return "identity";
    return `${state.group} element ${t.element}: ${elementTitle(element)}`;
  }

  function setTransform(transform) {
    state.transform = { ...state.transform, ...transform };
    renderTransformControls();
    refreshTransformed();
  }

  for (const radio of document.querySelectorAll('input[name="group"]')) {
    radio.addEventListener("change", async () => {
      if (!radio.checked) return;
      invalidate(["classify", "orbit"]);
      try {
        await loadGroup(radio.value);
      } catch (error) {
        showError(error);
        return;
      }
      state.transform = { kind: "element", element: 0, angle: 0 };
      renderTransformControls();
      refreshTransformed();
      refreshOrbit();
    });
  }

  $("prior").addEventListener("change", (event) => {
    state.prior = event.target.checked ? "upright" : "none";
    refreshTransformed();
    refreshOrbit();
  });

  $("angle").addEventListener("input", (event) => {
    setTransform({ kind: "angle", angle: Number(event.target.value) });
  });

  // -- predictions ---------------------------------------------------------------
  function modelTitle(model) {
    return model.group ? `G-CNN (${model.group})` : "plain CNN";
  }
  function modelKind(model) {
    const params = model.parameters ? `, ${model.parameters.toLocaleString("en")} parameters` : "";
    if (!model.group) return `no built-in symmetry, trained on upright digits only${params}`;
    if (model.config && model.config.canonicalize)
      return (
        `built for ${model.group}, and turns each digit to stand on its own axis first: its answer should hardly ` +
        `change at any angle of the turn (exactly so for quarter turns)${params}`
      );
    return (
      `built for ${model.group}: its answer should not change when the digit turns by one of the group's ` +
      `rotations (exactly so for quarter turns)${params}`
    );
  }

  function buildPredictionPanels() {
    const box = $("predictions");
    box.replaceChildren();
    for (const model of state.models) {
      const bars = el("div", { class: "bars" });
      for (const digit of DIGITS) {
        bars.append(
          el("span", { class: "label", text: String(digit), "data-digit": String(digit) }),
          el("div", { class: "bar", role: "presentation" }, [el("span")]),
          el("span", { class: "value", text: "" }),
        );
      }
      box.append(
        el("article", { class: `model${model.group ? " equivariant" : ""}`, "data-model": model.name, "data-state": "idle" }, [
          el("h3", { text: `${modelTitle(model)}: ${model.name}` }),
          el("p", { class: "kind", text: modelKind(model) }),
          el("div", { class: "answer" }, [
            el("span", { class: "digit", text: "–" }),
            el("span", { class: "confidence", text: "draw a digit to start" }),
          ]),
          bars,
          model.orientation ? orientationBlock() : el("span", { hidden: true }),
          el("p", { class: "timing", text: "" }),
        ]),
      );
    }
  }

  // Which way the digit is turned (G-CNNs with a joint head): an arrow that points where the
  // digit's "up" now is, the angle, and the input turned back upright.
  function orientationBlock() {
    const arrow = el("span", { class: "arrow", "aria-hidden": "true", text: "↑" });
    return el("div", { class: "orientation" }, [
      el("div", { class: "dial" }, [arrow]),
      el("div", {}, [
        el("p", { class: "turned", text: "" }),
        el("p", { class: "ambiguity", text: "", hidden: true }),
        el("p", { class: "readings hint", text: "" }),
      ]),
      el("figure", {}, [
        el("img", { class: "upright pixelated", alt: "The model input turned back upright", width: 84, height: 84 }),
        el("figcaption", { text: "turned upright" }),
      ]),
    ]);
  }

  function renderOrientation(node, prediction) {
    const block = node.querySelector(".orientation");
    if (!block || !prediction.orientation) return;
    const { degrees, confidence } = prediction.orientation;
    const shown = Math.round(degrees) % 360;
    block.querySelector(".arrow").style.transform = `rotate(${-degrees}deg)`; // counter-clockwise on screen
    block.querySelector(".turned").textContent =
      `turned by about ${shown}° (counter-clockwise) · ${(confidence * 100).toFixed(0)}% within half a step`;
    block.dataset.degrees = degrees.toFixed(2);
    const first = prediction.readings[0];
    // the flag names another digit: its best listed reading (a digit's profile can have two peaks, both listed)
    const rival = prediction.readings.find((r) => r.digit !== first.digit);
    const ambiguity = block.querySelector(".ambiguity");
    ambiguity.hidden = !prediction.ambiguous;
    // two readings half a turn apart are the same picture read either way up (a 6 and a 9)
    const apart = rival ? Math.abs(((first.degrees - rival.degrees + 540) % 360) - 180) : 0;
    ambiguity.textContent = !prediction.ambiguous
      ? ""
      : !rival
        ? `${first.digit}, or perhaps another digit` // the rival reading is not among the three listed
        : apart > 135
          ? `${first.digit} or ${rival.digit}, depending on which way is up`
          : `${first.digit}, or perhaps ${rival.digit}`;
    block.querySelector(".readings").textContent =
      "readings: " +
      prediction.readings
        .map((r) => `${r.digit} at ${Math.round(r.degrees) % 360}° (${(r.probability * 100).toFixed(1)}%)`)
        .join(", ");
    const image = block.querySelector(".upright");
    if (prediction.upright_image) image.src = `data:image/png;base64,${prediction.upright_image}`;
    else image.removeAttribute("src");
  }

  function panel(name) {
    return $("predictions").querySelector(`[data-model="${CSS.escape(name)}"]`);
  }

  function setPanelsState(value) {
    for (const node of $("predictions").querySelectorAll(".model")) node.dataset.state = value;
  }

  function renderPrediction(prediction) {
    const node = panel(prediction.model);
    if (!node) return;
    node.dataset.state = "done";
    node.dataset.digit = String(prediction.digit);
    node.querySelector(".digit").textContent = String(prediction.digit);
    node.querySelector(".confidence").textContent = `${(prediction.confidence * 100).toFixed(1)}% sure`;
    const labels = node.querySelectorAll(".bars .label");
    const fills = node.querySelectorAll(".bars .bar span");
    const values = node.querySelectorAll(".bars .value");
    prediction.probabilities.forEach((p, digit) => {
      fills[digit].style.width = `${(p * 100).toFixed(2)}%`;
      values[digit].textContent = `${(p * 100).toFixed(1)}%`;
      labels[digit].classList.toggle("top", digit === prediction.digit);
    });
    const top3 = prediction.top3.map((t) => `${t.digit} (${(t.probability * 100).toFixed(1)}%)`).join(", ");
    node.querySelector(".timing").textContent = `top 3: ${top3} · forward pass ${prediction.inference_ms.toFixed(1)} ms`;
    renderOrientation(node, prediction);
  }

  function resetPredictions(message) {
    for (const node of $("predictions").querySelectorAll(".model")) {
      node.dataset.state = "idle";
      delete node.dataset.digit;
      node.querySelector(".digit").textContent = "–";
      node.querySelector(".confidence").textContent = message;
      for (const fill of node.querySelectorAll(".bars .bar span")) fill.style.width = "0";
      for (const value of node.querySelectorAll(".bars .value")) value.textContent = "";
      for (const label of node.querySelectorAll(".bars .label")) label.classList.remove("top");
      node.querySelector(".timing").textContent = "";
      const block = node.querySelector(".orientation");
      if (block) {
        delete block.dataset.degrees;
        block.querySelector(".turned").textContent = "";
        block.querySelector(".readings").textContent = "";
        block.querySelector(".ambiguity").hidden = true;
        block.querySelector(".upright").removeAttribute("src");
      }
    }
  }

  // -- requests on every change ----------------------------------------------------
  function setInput(input) {
    state.input = input;
    hideError();
    if (!input) {
      resetPredictions("draw a digit to start");
      $("rotated").removeAttribute("src");
      $("seen").removeAttribute("src");
      $("orbit").replaceChildren();
      $("orbit").dataset.state = "idle";
      $("orbit-summary").replaceChildren();
      $("input-hint").textContent = "Draw with the mouse or a finger, or upload a photo of a handwritten digit.";
      return;
    }
    $("input-hint").textContent =
      input.source === "upload" ? `Uploaded ${input.filename}.` : input.source === "sample" ? "An MNIST test digit." : "Your drawing.";
    refreshTransformed();
    refreshOrbit();
  }

  // /classify (with the 28x28 the models saw) and /rotate, for the current transform.
  function refreshTransformed() {
    if (!state.input || !state.ready) return;
    invalidate(["classify"]);
    const version = versions.classify;
    const current = () => version === versions.classify;
    const query = transformQuery();
    const classify = latest("classify", async (signal) => {
      const sep = query ? "&" : "";
      const url = `/classify?return_image=true&orientation_prior=${state.prior}${sep}${query}`;
      const response = await api(url, { method: "POST", body: form(), signal });
      return response.json();
    });
    const rotate = latest("rotate", async (signal) => {
      const response = await api(`/rotate${query ? "?" + query : ""}`, { method: "POST", body: form(), signal });
      return response.blob();
    });
    classify
      .then((result) => {
        if (!result || !current()) return;
        hideError();
        result.predictions.forEach(renderPrediction);
        if (result.image) $("seen").src = `data:image/png;base64,${result.image}`;
      })
      .catch((error) => {
        if (!current()) return;
        // Whatever is on screen belongs to an earlier input or transform: take it down.
        resetPredictions("no answer: see the message above");
        setPanelsState("error");
        $("seen").removeAttribute("src");
        showError(error);
      });
    rotate
      .then((blob) => {
        if (!blob || !current()) return;
        const old = $("rotated").src;
        $("rotated").src = URL.createObjectURL(blob);
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      })
      .catch(() => {
        // /classify reports the same problem for the same input; one message is enough.
        if (current()) $("rotated").removeAttribute("src");
      });
  }

  // /orbit: every element of the chosen group, through every model.
  function refreshOrbit() {
    if (!state.input || !state.ready) return;
    invalidate(["orbit"]);
    const version = versions.orbit;
    const current = () => version === versions.orbit;
    latest("orbit", async (signal) => {
      const url = `/orbit?group=${state.group}&return_image=true&orientation_prior=${state.prior}`;
      const response = await api(url, { method: "POST", body: form(), signal });
      return response.json();
    })
      .then(async (result) => {
        if (!result || !current()) return;
        const upright = result.image ? await loadImage(`data:image/png;base64,${result.image}`) : null;
        if (!current()) return;
        state.orbit = result;
        state.upright = upright;
        renderOrbit();
      })
      .catch(() => {
        if (!current()) return; // /classify shows the message
        $("orbit").replaceChildren();
        $("orbit-summary").replaceChildren();
        $("orbit").dataset.state = "error";
      });
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("cannot decode an image from the service"));
      image.src = src;
    });
  }

  // The upright 28x28 under one element, drawn like model.groups does it: mirror
  // left-right first, then rotate counter-clockwise about the image centre.
  function orbitThumbnail(row) {
    const canvas = el("canvas", { width: 28, height: 28, "aria-hidden": "true" });
    const c = canvas.getContext("2d");
    c.fillStyle = "#000";
    c.fillRect(0, 0, 28, 28);
    if (state.upright) {
      c.imageSmoothingEnabled = row.degrees % 90 !== 0;
      c.translate(14, 14);
      c.rotate((-row.degrees * Math.PI) / 180); // canvas y points down: negative is counter-clockwise
      if (row.reflection) c.scale(-1, 1);
      c.drawImage(state.upright, -14, -14);
    }
    return canvas;
  }

  function renderOrbit() {
    const result = state.orbit;
    const byName = Object.fromEntries(state.models.map((m) => [m.name, m]));
    const upright = Object.fromEntries(result.summary.map((s) => [s.model, s.upright_digit]));
    const cells = result.rows.map((row) => {
      const answers = el("div", { class: "answers" });
      const turns = [];
      for (const p of row.predictions) {
        const same = p.digit === upright[p.model];
        const turned = p.orientation_degrees == null ? null : Math.round(p.orientation_degrees) % 360;
        answers.append(
          el("span", { class: "tag", text: byName[p.model]?.group ? "G-CNN" : "CNN" }),
          el("span", {
            class: same ? "ok" : "changed",
            text: `${p.digit}${p.ambiguous ? "?" : ""}`,
            title:
              `${p.model}: ${p.digit} (${(p.confidence * 100).toFixed(1)}%)${same ? "" : ", differs from upright"}` +
              (turned == null ? "" : `, turned by about ${turned}°`) +
              (p.ambiguous ? ", ambiguous" : ""),
            "data-model": p.model,
            "data-digit": String(p.digit),
            "data-degrees": p.orientation_degrees == null ? "" : p.orientation_degrees.toFixed(2),
          }),
        );
        if (turned != null) turns.push(`↻ ${turned}°`);
      }
      const element = state.groupInfo?.elements[row.element];
      const cell = el(
        "button",
        { type: "button", class: "orbit-cell", "data-element": String(row.element), title: element ? elementTitle(element) : "" },
        [
          orbitThumbnail(row),
          el("div", { class: "label", text: elementLabel(row) }),
          answers,
          el("div", { class: "turn", text: turns.join(" "), title: "the G-CNN's estimate of the turn" }),
        ],
      );
      cell.addEventListener("click", () => setTransform({ kind: "element", element: row.element }));
      return cell;
    });
    $("orbit").replaceChildren(...cells);
    $("orbit").dataset.state = "done";
    $("orbit-summary").replaceChildren(
      ...result.summary.map((s) => {
        const stable = s.distinct_predictions === 1;
        const model = byName[s.model];
        const text =
          `${model ? modelTitle(model) : s.model}: ` +
          (stable
            ? `${s.upright_digit} under all ${result.order} elements`
            : `${s.distinct_predictions} different answers, ${Math.round(s.agreement * result.order)} of ${result.order} agree with upright`);
        return el("span", { class: stable ? "stable" : "unstable", text, "data-model": s.model });
      }),
    );
    renderTransformControls();
  }

  // -- evaluation --------------------------------------------------------------------
  function percent(value) {
    return typeof value === "number" ? `${(value * 100).toFixed(2)}%` : "n/a";
  }

  function renderEvaluation() {
    const body = $("evaluation").querySelector("tbody");
    body.replaceChildren(
      ...state.models.map((model) =>
        el("tr", { "data-model": model.name }, [
          el("th", { scope: "row", text: `${modelTitle(model)} (${model.name})` }),
          el("td", { class: "number", text: percent(model.metrics?.upright_accuracy) }),
          el("td", { class: "number", text: percent(model.metrics?.rotated_accuracy) }),
        ]),
      ),
    );
    for (const cell of $("evaluation").querySelectorAll("thead th:not(:first-child)")) cell.classList.add("number");
  }

  // -- start-up ----------------------------------------------------------------------
  async function waitUntilReady() {
    const status = $("status");
    for (;;) {
      try {
        const response = await fetch("/readyz", { cache: "no-store" });
        if (response.ok) {
          const ready = await response.json();
          status.dataset.state = "ready";
          status.textContent = `ready · ${ready.models.length} models`;
          return;
        }
        status.dataset.state = "loading";
        status.textContent = "models loading…";
      } catch {
        status.dataset.state = "down";
        status.textContent = "service unreachable";
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function start() {
    clearPad();
    buildSamples();
    $("error-close").addEventListener("click", hideError);
    $("plot").src = "/evaluation/accuracy_vs_angle.png";
    try {
      await waitUntilReady();
      const [models] = await Promise.all([getJson("/models"), loadGroup(state.group)]);
      state.models = models.models;
      state.ready = true;
      buildPredictionPanels();
      renderEvaluation();
      renderTransformControls();
      document.body.dataset.ready = "true";
      if (state.input) setInput(state.input); // drawn while the models were loading
    } catch (error) {
      showError(error);
    }
  }

  // Radio buttons keep their state across reloads in some browsers; start from C8.
  for (const radio of document.querySelectorAll('input[name="group"]')) radio.checked = radio.value === state.group;
  if (!GROUPS.includes(state.group)) throw new Error(`unexpected default group ${state.group}`);
  start();
})();
