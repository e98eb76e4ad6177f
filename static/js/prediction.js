// The live prediction view: follows the prediction's server-sent events (status, queue position,
// logs, iterator output chunks), draws tqdm progress bars from the logs, renders the output by
// the version's Output schema, and reloads the final state from the server when it is done.
(function () {
  "use strict";
  var root = document.getElementById("prediction");
  if (!root) return;
  var spec = JSON.parse(document.getElementById("output-spec").textContent);
  var state = JSON.parse(document.getElementById("prediction-state").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var TERMINAL = ["succeeded", "failed", "canceled"];
  var TQDM = /(\d{1,3})%\|[^|]*\|\s*(\d+)\/(\d+)(?:\s*\[([^\]]*)\])?/;
  var chunks = [];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function mediaKind(url) {
    if (typeof url !== "string") return "file";
    var mime = "";
    if (url.indexOf("data:") === 0) mime = url.slice(5).split(/[;,]/)[0];
    var ext = url.split("?")[0].split(".").pop().toLowerCase();
    if (/^image\//.test(mime) || ["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "avif"].indexOf(ext) >= 0) return "image";
    if (/^audio\//.test(mime) || ["mp3", "wav", "ogg", "flac", "m4a", "aac"].indexOf(ext) >= 0) return "audio";
    if (/^video\//.test(mime) || ["mp4", "webm", "mov", "mkv"].indexOf(ext) >= 0) return "video";
    return "file";
  }

  function media(url) {
    if (typeof url !== "string" || !/^(https?:|data:|\/)/.test(url)) return el("pre", { "class": "output-text" }, JSON.stringify(url));
    var kind = mediaKind(url);
    if (kind === "image") return el("img", { "class": "output-media", src: url, alt: "Output image" });
    if (kind === "audio" || kind === "video") return el(kind, { "class": "output-media", src: url, controls: "" });
    var name = url.indexOf("data:") === 0 ? "file" : url.split("?")[0].split("/").pop().slice(0, 80);
    return el("a", { "class": "output-file", href: url, download: "" }, "Download " + name);
  }

  function render(value, s) {
    var box = document.createDocumentFragment();
    if (value === null || value === undefined) return box;
    if (s.kind === "file") box.appendChild(media(value));
    else if (s.kind === "files" && Array.isArray(value)) {
      var ul = el("ul", { "class": "output-gallery" });
      value.forEach(function (v) { var li = el("li"); li.appendChild(media(v)); ul.appendChild(li); });
      box.appendChild(ul);
    } else if (s.kind === "concatenate" && Array.isArray(value)) box.appendChild(el("pre", { "class": "output-text" }, value.join("")));
    else if (s.kind === "strings" && Array.isArray(value)) {
      var list = el("ul", { "class": "output-list" });
      value.forEach(function (v) { list.appendChild(el("li", {}, String(v))); });
      box.appendChild(list);
    } else if (s.kind === "text" && typeof value === "string") {
      if (/^(https?:|data:)/.test(value) && mediaKind(value) !== "file") box.appendChild(media(value));
      else box.appendChild(el("pre", { "class": "output-text" }, value));
    } else if (s.kind === "value") box.appendChild(el("p", { "class": "output-value" }, JSON.stringify(value)));
    else if (s.kind === "object" && value && typeof value === "object") {
      var dl = el("dl", { "class": "output-object" });
      Object.keys(s.properties).forEach(function (k) {
        if (!(k in value)) return;
        dl.appendChild(el("dt", {}, k));
        var dd = el("dd"); dd.appendChild(render(value[k], s.properties[k])); dl.appendChild(dd);
      });
      box.appendChild(dl);
    } else box.appendChild(el("pre", { "class": "output-text" }, JSON.stringify(value, null, 2)));
    return box;
  }

  function showOutput(value) {
    var out = $("output");
    out.textContent = "";
    out.appendChild(render(value, spec));
  }

  function progress(text) {
    var lines = text.split(/[\r\n]+/);
    for (var i = lines.length - 1; i >= 0; i--) {
      var m = TQDM.exec(lines[i]);
      if (!m) continue;
      $("progress").hidden = false;
      $("progress-bar").value = Number(m[1]);
      $("progress-text").textContent = m[2] + "/" + m[3] + (m[4] ? " · " + m[4] : "");
      return;
    }
  }

  function setStatus(status) {
    var node = $("status");
    node.textContent = status;
    node.className = "status status-" + status;
    if (status !== "starting") { $("queue").textContent = ""; $("queue-eta").textContent = ""; }
    if (TERMINAL.indexOf(status) >= 0) {
      var cancel = $("cancel-form");
      if (cancel) cancel.remove();
    }
  }

  var PHASES = {
    queued: "waiting for a free slot",
    starting_instance: "starting an instance",
    waiting_for_capacity: "waiting for a host with room (the hosts for its hardware are full)",
    setup: "the model is setting up"
  };

  // Queue transparency: place in the queue, phase, and the estimated start (from recent runs).
  function showQueue(q) {
    if (!q || !q.phase || q.phase === "running") { $("queue").textContent = ""; $("queue-eta").textContent = ""; return; }
    var parts = [];
    if (q.position) parts.push("position " + q.position + " in the queue");
    parts.push(PHASES[q.phase] || q.phase);
    $("queue").textContent = "· " + parts.join(" · ");
    var eta = "";
    if (q.estimated_start_at) {
      var wait = Math.max(0, Math.round((Date.parse(q.estimated_start_at) - Date.now()) / 1000));
      eta = "· starts in about " + wait + " s";
    }
    $("queue-eta").textContent = eta;
  }

  // A training that succeeded links the version it made.
  function showTrainedVersion(v) {
    var slot = $("trained-version");
    if (!slot || !v) return;
    slot.textContent = "· New version: ";
    if (v.url) slot.appendChild(el("a", { href: v.url }, v.short));
    else slot.appendChild(el("code", {}, v.short));
  }

  function seconds(v) { return typeof v === "number" ? v.toFixed(2) + " s" : "—"; }

  function applyState(s) {
    setStatus(s.status);
    $("logs").textContent = s.logs || "";
    progress(s.logs || "");
    $("error").textContent = s.error || "";
    if (s.output !== null && s.output !== undefined) showOutput(s.output);
    $("predict-time").textContent = seconds((s.metrics || {}).predict_time);
    $("total-time").textContent = seconds((s.metrics || {}).total_time);
    $("cost").textContent = s.cost ? "$" + s.cost : "—";
    showTrainedVersion(s.trained_version);
  }

  progress($("logs").textContent);
  if (state.status === "starting") showQueue(state.queue);
  if (TERMINAL.indexOf(state.status) >= 0 || !window.EventSource) return;

  // Events replay from the start of the stream, so the page starts from an empty log.
  $("logs").textContent = "";
  var source = new EventSource(root.dataset.events);
  source.addEventListener("status", function (e) { setStatus(JSON.parse(e.data).status); });
  source.addEventListener("queue", function (e) { showQueue(JSON.parse(e.data)); });
  source.addEventListener("logs", function (e) {
    var logs = $("logs");
    var atBottom = logs.scrollHeight - logs.scrollTop - logs.clientHeight < 20;
    logs.textContent += JSON.parse(e.data).text;
    if (atBottom) logs.scrollTop = logs.scrollHeight;
    progress(logs.textContent);
    if ($("status").textContent === "starting") setStatus("processing");
  });
  source.addEventListener("output", function (e) {
    var d = JSON.parse(e.data);
    chunks[d.index] = d.chunk;
    showOutput(chunks.filter(function (c) { return c !== undefined; }));
  });
  source.addEventListener("done", function () {
    source.close();
    fetch(root.dataset.json, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(applyState);
  });
})();
