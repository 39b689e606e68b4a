// The History page: a search form whose values live in the address, results grouped by hour,
// a day timeline per stream. Everything comes from the JSON API under /api/.
(() => {
  "use strict";
  const token = new URLSearchParams(location.search).get("token");
  const form = document.getElementById("search");
  // the fleet's page (mmstream serve --db) has a device filter too
  const FIELDS = ["q", "device", "stream", "tag", "emotion", "since", "until"]
    .filter((name) => form.elements[name]);
  const fleet = Boolean(form.elements.device);
  const message = document.getElementById("message");
  const results = document.getElementById("results");
  const panel = document.getElementById("moment");

  const withToken = (url) => !token ? url :
    url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  const pad = (n) => String(n).padStart(2, "0");
  const clock = (t) => { const d = new Date(t * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
  const dayOf = (t) => { const d = new Date(t * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`; };
  const iso = (t) => new Date(t * 1000).toISOString();
  if (token && !fleet) document.getElementById("live-link").href = withToken("./");
  const where = (m) => fleet && m.device ? `${m.device} ${m.stream}` : m.stream;

  async function api(path) {
    const response = await fetch(withToken(path));
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function line(m) {
    const seen = [...m.tags, ...(m.emotion ? [m.emotion] : [])].join(" · ");
    return [`${clock(m.t)} ${where(m)}`, m.text ? `'${m.text}'` : "", seen]
      .filter(Boolean).join(" — ");
  }

  function openMoment(m) {
    panel.hidden = false;
    panel.replaceChildren();
    const title = document.createElement("h2");
    title.textContent = `${dayOf(m.t)} ${clock(m.t)} – ${clock(m.t_end)} · ${where(m)}`;
    const text = document.createElement("p");
    text.className = "moment-text";
    text.textContent = m.text || "(no speech)";
    const seen = document.createElement("p");
    seen.textContent = [...m.tags, m.emotion || ""].filter(Boolean).join(" · ") +
      (m.valence !== null ? ` (valence ${m.valence})` : "");
    panel.append(title, text, seen);
    if (m.thumbnail !== null) {
      const img = document.createElement("img");
      img.src = withToken(`api/thumbnail/${m.thumbnail}.jpg`);
      img.alt = `picture of ${m.stream}`;
      panel.append(img);
    }
    if (m.recording) {
      const how = document.createElement("p");
      const code = document.createElement("code");
      code.textContent = `mmstream replay ${m.recording} --start ${m.offset_s.toFixed(1)}` +
        ` --end ${m.end_offset_s.toFixed(1)}`;
      how.append("In ", m.recording, ` at ${m.offset_s.toFixed(1)} s: `, code);
      panel.append(how);
    }
    offerClip(m);
    panel.scrollIntoView({block: "nearest"});
  }

  // "play" when the daemon's recordings cover the moment (/clip cuts it: docs/web.md)
  async function offerClip(m) {
    const params = new URLSearchParams({stream: m.stream, from: String(m.t - 1),
                                        to: String(Math.max(m.t_end, m.t + 3) + 1)});
    const opened = panel.firstChild;
    let found;
    try {
      found = await api(`clip/available?${params}`);
    } catch (error) {
      return;  // no recordings here: nothing to offer
    }
    if (!found.available || panel.firstChild !== opened) return;  // another moment opened
    const play = document.createElement("button");
    play.type = "button";
    play.className = "play";
    play.textContent = "▶ play";
    play.addEventListener("click", () => {
      const video = document.createElement("video");
      video.controls = true;
      video.src = withToken(`clip?${params}`);
      play.replaceWith(video);
      video.play().catch(() => {});  // the controls stay for a blocked autoplay
    });
    panel.append(play);
  }

  function showResults(moments) {
    results.replaceChildren();
    let hour = "";
    let list = null;
    for (const m of moments) {
      const d = new Date(m.t * 1000);
      const label = `${dayOf(m.t)} ${pad(d.getHours())}:00`;
      if (label !== hour) {
        hour = label;
        const h = document.createElement("h3");
        h.textContent = label;
        list = document.createElement("ul");
        list.className = "moments";
        results.append(h, list);
      }
      const item = document.createElement("li");
      item.className = "moment";
      item.tabIndex = 0;
      const picture = document.createElement(m.thumbnail !== null ? "img" : "div");
      if (m.thumbnail !== null) {
        picture.src = withToken(`api/thumbnail/${m.thumbnail}.jpg`);
        picture.alt = "";
      } else {
        picture.className = "no-picture";
      }
      const words = document.createElement("span");
      words.textContent = line(m);
      item.append(picture, words);
      item.addEventListener("click", () => openMoment(m));
      list.append(item);
    }
  }

  async function jumpTo(stream, kind, span) {
    const params = new URLSearchParams({stream, since: iso(span.t - 1),
                                        until: iso(span.t_end + 5), limit: "20"});
    if (kind === "tag") params.set("tag", span.label);
    if (kind === "emotion") params.set("emotion", span.label);
    if (kind === "speech") params.set("type", "transcript");
    const device = fleet ? new URLSearchParams(location.search).get("device") : null;
    if (device) params.set("device", device);
    const {moments} = await api(`api/search?${params}`);
    if (!moments.length) return;
    moments.sort((a, b) => Math.abs(a.t - span.t) - Math.abs(b.t - span.t));
    openMoment(moments[0]);
  }

  async function showDay(day) {
    const data = await api(`api/timeline?day=${day}`);
    const lanes = document.getElementById("lanes");
    lanes.replaceChildren();
    // the lanes cover the day's activity (first to last span), so a busy minute is readable
    const spans = data.streams.flatMap((s) => [...s.speech, ...s.tags, ...s.emotions]);
    let from = data.start, to = data.end;
    if (spans.length) {
      from = Math.min(...spans.map((s) => s.t));
      to = Math.max(...spans.map((s) => s.t_end));
      const margin = Math.max((to - from) * 0.02, 1);
      from = Math.max(data.start, from - margin);
      to = Math.min(data.end, to + margin);
    }
    document.getElementById("day").textContent = `${data.day} ${clock(from)} – ${clock(to)}`;
    const length = to - from;
    for (const stream of data.streams) {
      const group = document.createElement("div");
      group.className = "lane-group";
      group.dataset.stream = stream.stream;
      const name = document.createElement("div");
      name.className = "lane-label";
      name.textContent = stream.stream;
      group.append(name);
      for (const [kind, spans] of [["speech", stream.speech], ["tag", stream.tags],
                                   ["emotion", stream.emotions]]) {
        const lane = document.createElement("div");
        lane.className = `lane ${kind}`;
        lane.title = kind;
        for (const span of spans) {
          const segment = document.createElement("div");
          segment.className = `segment ${kind}`;
          segment.style.left = `${(100 * (span.t - from) / length).toFixed(4)}%`;
          segment.style.width = `${(100 * (span.t_end - span.t) / length).toFixed(4)}%`;
          segment.title = `${clock(span.t)} ${span.label}`;
          segment.addEventListener("click", () => jumpTo(stream.stream, kind, span));
          lane.append(segment);
        }
        group.append(lane);
      }
      lanes.append(group);
    }
  }

  async function run() {
    const here = new URLSearchParams(location.search);
    const params = new URLSearchParams();
    for (const name of FIELDS) {
      const value = here.get(name);
      form.elements[name].value = value || "";
      if (value) params.set(name, value);
    }
    message.textContent = "";
    try {
      const {moments} = await api(`api/search?${params}`);
      showResults(moments);
      if (!moments.length) message.textContent = "no moments found";
      await showDay(moments.length ? dayOf(moments[0].t) : dayOf(Date.now() / 1000));
    } catch (error) {
      message.textContent = error.message;
    }
    document.body.dataset.state = "ready";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const name of FIELDS) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    if (token) params.set("token", token);
    history.pushState(null, "", `history?${params}`);
    run();
  });
  window.addEventListener("popstate", run);
  run();
})();
