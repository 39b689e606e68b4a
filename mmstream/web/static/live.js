/* mmstream live view: draws what the daemon pushes over Server-Sent Events.
   A `full` message replaces everything (the first one, and the first after a reconnect); the
   others carry news only. Pictures are fetched when a message says a new one exists, loaded
   off-page and shown only once decoded: no broken image, before the first picture (a
   placeholder says why there is none) or when a fetch fails (the last picture stays). The
   badge says where the run is: loading models, live, run ended (the server said so before it
   closed the stream), or daemon unreachable (the stream failed without that: retrying). Every
   text goes in as text (textContent), never as HTML: transcripts are what anyone said. */
(function () {
  "use strict";
  const settings = JSON.parse(document.getElementById("live-settings").textContent);
  const token = new URLSearchParams(location.search).get("token");
  const EMOTION_COLORS = { angry: "#d62728", disgust: "#8c564b", fear: "#9467bd",
                           happy: "#f0a202", sad: "#1f77b4", surprise: "#17becf",
                           neutral: "#6b7fa8" };
  const EMOTIONS = Object.keys(EMOTION_COLORS);
  const MAX_EVENT_ROWS = settings.max_events;
  const MAX_LINES = settings.max_transcripts;
  const streams = new Map();  // stream id -> its card's parts and data
  let source = null;
  let retryMs = 1000;
  let phase = "loading";
  const PHASES = { loading: "loading models…", live: "live", ended: "run ended" };
  const WAITING = { loading: "loading models…", live: "waiting for the first picture…",
                    ended: "the run ended before a picture" };

  // Relative URLs: the page works the same behind a reverse proxy's sub-path.
  function withToken(url) {
    if (!token) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  function formatTime(t) {
    if (t === null || t === undefined) return "";
    return t >= 1e9 ? new Date(t * 1000).toLocaleTimeString() : t.toFixed(1) + " s";
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  // ---- one card per stream ------------------------------------------------------------------

  function card(id) {
    let stream = streams.get(id);
    if (stream) return stream;
    const node = document.getElementById("stream-template").content.firstElementChild.cloneNode(true);
    node.dataset.stream = id;
    node.querySelector(".stream-name").textContent = id;
    node.querySelector(".history").textContent = Math.round(settings.history_s / 60) + " min";
    document.getElementById("streams").appendChild(node);
    node.querySelector(".frame .placeholder").textContent = WAITING[phase];
    stream = { id: id, node: node, shown: 0, requested: 0, alt: id, mood: [],
               lines: new Map(), chart: null, wall: null, wanted: 0, loading: false,
               filter: "" };
    const select = node.querySelector(".events select");
    select.addEventListener("change", () => { stream.filter = select.value; filterRows(stream); });
    streams.set(id, stream);
    return stream;
  }

  // A new picture is fetched only once the previous one has arrived: a slow link skips
  // pictures instead of queueing them.
  // The picture is decoded in an image off the page, which then takes the shown one's place.
  function fetchFrame(stream) {
    const no = stream.wanted;
    if (stream.loading || !no || no === stream.requested || phase === "ended") return;
    stream.loading = true;
    stream.requested = no;
    const next = new Image();
    next.addEventListener("load", () => {
      stream.loading = false;
      next.dataset.loaded = String(no);
      next.alt = stream.alt;
      stream.node.querySelector(".frame .picture").replaceWith(next);
      next.className = "picture";
      stream.shown = no;
      fetchFrame(stream);
    });
    next.addEventListener("error", () => { stream.loading = false; });  // the last one stays
    next.src = withToken("frame/" + encodeURIComponent(stream.id) + ".jpg?n=" + no);
  }

  function showFrame(stream, frame) {
    stream.wanted = frame.no;
    stream.alt = stream.id + " at " + formatTime(frame.t);
    const tags = frame.tags.map((tag) => tag[0]).join(", ");
    const mood = frame.emotion ? frame.emotion + (frame.valence === null ? "" :
      " (" + (frame.valence > 0 ? "+" : "") + frame.valence.toFixed(2) + ")") : "";
    stream.node.querySelector(".now-tags").textContent = [tags, mood].filter(Boolean).join(" · ");
    stream.node.querySelector(".frame-caption").textContent =
      formatTime(frame.t) + (frame.faces ? " · " + frame.faces + " face" + (frame.faces > 1 ? "s" : "") : "");
    fetchFrame(stream);
  }

  function upsertLines(stream, lines) {
    const list = stream.node.querySelector(".lines");
    for (const line of lines) {
      let item = stream.lines.get(line.key);
      if (!item) {
        item = document.createElement("li");
        item.dataset.key = line.key;
        item.appendChild(document.createElement("span")).className = "time";
        item.appendChild(document.createElement("span")).className = "text";
        stream.lines.set(line.key, item);
      }
      item.dataset.start = line.start;
      item.className = line.final ? "final" : "partial";
      item.querySelector(".time").textContent = formatTime(line.start) + "–" + formatTime(line.end);
      item.querySelector(".text").textContent = line.text;
      const after = Array.from(list.children).find((other) =>
        other !== item && Number(other.dataset.start) > line.start);
      list.insertBefore(item, after || null);
    }
    while (list.children.length > MAX_LINES) {
      stream.lines.delete(list.firstElementChild.dataset.key);
      list.firstElementChild.remove();
    }
    stream.node.querySelector(".transcript-none").hidden = list.children.length > 0;
    list.scrollTop = list.scrollHeight;
  }

  function addEvents(stream, events) {
    const body = stream.node.querySelector(".events tbody");
    for (const event of events) {
      const row = body.insertRow(0);  // newest first
      row.dataset.type = event.type;
      cell(row, formatTime(event.t), "num");
      cell(row, event.type);
      cell(row, event.text);
      row.hidden = Boolean(stream.filter) && event.type !== stream.filter;
    }
    while (body.rows.length > MAX_EVENT_ROWS) body.deleteRow(-1);
  }

  function filterRows(stream) {
    for (const row of stream.node.querySelectorAll(".events tbody tr")) {
      row.hidden = Boolean(stream.filter) && row.dataset.type !== stream.filter;
    }
  }

  // ---- the emotion and valence chart --------------------------------------------------------

  function chartData(stream) {
    const x = stream.mood.map((p) => p[0]);
    const valence = stream.mood.map((p) => p[1]);
    const dots = EMOTIONS.map((label) => stream.mood.map((p) => (p[2] === label ? p[1] : null)));
    return [x, valence].concat(dots);
  }

  function makeChart(stream) {
    const el = stream.node.querySelector(".mood .plot");
    const opts = {
      width: Math.max(320, el.clientWidth), height: 170,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: stream.wall }, y: { range: () => [-1.05, 1.05] } },
      axes: [{ label: stream.wall ? "" : "seconds", labelSize: stream.wall ? 0 : 18 },
             { splits: () => [-1, -0.5, 0, 0.5, 1], size: 40 }],
      series: [{}, { label: "valence", stroke: "#5d6675", width: 1.5, points: { show: false } }]
        .concat(EMOTIONS.map((label) => ({
          label: label, stroke: EMOTION_COLORS[label], paths: () => null,
          points: { show: true, size: 8, width: 0, fill: EMOTION_COLORS[label] } }))),
      hooks: { draw: [(u) => { u.root.dataset.drawn = "yes"; }] },  // tests wait for it
    };
    stream.chart = new uPlot(opts, chartData(stream), el);
  }

  function addMood(stream, points) {
    if (!points.length) return;
    stream.mood = stream.mood.concat(points);
    const newest = stream.mood[stream.mood.length - 1][0];
    stream.mood = stream.mood.filter((p) => p[0] >= newest - settings.history_s);
    if (stream.wall === null) stream.wall = newest >= 1e9;
    if (!stream.chart) makeChart(stream);
    else stream.chart.setData(chartData(stream));
  }

  // ---- health -------------------------------------------------------------------------------

  function fillTable(id, rows) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    for (const values of rows) {
      const row = body.insertRow();
      for (const value of values) {
        if (value && typeof value === "object") {
          const td = cell(row, value.text, value.className);
          if (value.title) td.title = value.title;  // the counter's code, for a search in docs
        }
        else cell(row, String(value), typeof value === "number" ? "num" : "");
      }
    }
    if (!rows.length) cell(body.insertRow(), "none", "none");
  }

  function showHealth(health, viewers) {
    document.getElementById("mode").textContent = (health.running ? health.mode + " run" :
      "between pipelines") + (health.reloads ? " · reloaded " + health.reloads + "×" : "") +
      " · " + viewers + " watching";
    fillTable("health-sources", health.sources.map((s) => [
      s.name, { text: s.state, className: "state-" + s.state }, s.reason]));
    fillTable("health-queues", health.queues.map((q) => [q.name, q.depth + " / " + q.capacity,
      q.dropped ? q.dropped + " dropped" : ""]).concat(
      health.drops.map((d) => [d.where, d.count + " dropped", { text: d.text, title: d.key }])));
    fillTable("health-sinks", Object.entries(health.sinks).map(([name, s]) => [
      name + (s.broker ? " " + s.broker : ""),
      { text: s.connected ? "connected" : "disconnected",
        className: s.connected ? "state-ok" : "state-down" },
      "spool " + s.spool_depth]));
    fillTable("health-models", health.models.map((m) => [
      m.name, m.load_s === null ? "" : "loaded in " + m.load_s.toFixed(2) + " s"]));
    const lags = Object.entries(health.lag).map(([stream, lag]) => ["lag " + stream, lag.toFixed(2) + " s"]);
    fillTable("health-device", [["CPU (device)", health.cpu.device.toFixed(0) + " % of " + health.cpu.cores + " cores"],
                                ["CPU (mmstream)", health.cpu.mmstream.toFixed(0) + " % of a core"]].concat(lags));
  }

  // ---- the update stream --------------------------------------------------------------------

  function reset() {
    for (const stream of streams.values()) {
      if (stream.chart) stream.chart.destroy();
      stream.node.remove();
    }
    streams.clear();
  }

  function showPhase(next) {
    phase = next;
    setConnection(phase, PHASES[phase] || phase);
    for (const waiting of document.querySelectorAll(".frame .placeholder")) {
      waiting.textContent = WAITING[phase] || "";
    }
  }

  function apply(message) {
    if (message.full) reset();
    if (message.phase) showPhase(message.phase);
    for (const [id, news] of Object.entries(message.streams || {})) {
      const stream = card(id);
      if (news.transcripts && news.transcripts.length) upsertLines(stream, news.transcripts);
      if (news.events && news.events.length) addEvents(stream, news.events);
      if (news.mood) addMood(stream, news.mood);
      if (news.frame) showFrame(stream, news.frame);
    }
    if (message.health) showHealth(message.health, message.viewers);
  }

  function setConnection(state, text) {
    const badge = document.getElementById("connection");
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // EventSource reconnects by itself after a dropped connection; after an HTTP error (a proxy's
  // 502 while the daemon restarts) it gives up, so the page starts a new one itself.
  function connect() {
    source = new EventSource(withToken("updates"));
    source.addEventListener("open", () => { retryMs = 1000; });  // the first message says more
    source.addEventListener("update", (event) => apply(JSON.parse(event.data)));
    source.addEventListener("ended", () => {
      source.close();  // a finished run: nothing will come back, so no reconnecting
      showPhase("ended");
    });
    source.addEventListener("error", () => {
      if (phase === "ended") return;
      setConnection("unreachable", "daemon unreachable · reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 15000);
      }
    });
  }

  window.addEventListener("resize", () => {
    for (const stream of streams.values()) {
      if (stream.chart) {
        const el = stream.chart.root.parentElement;
        stream.chart.setSize({ width: Math.max(320, el.clientWidth), height: stream.chart.height });
      }
    }
  });
  window.mmstreamLive = { streams: streams };  // for tests and the console
  connect();
})();
