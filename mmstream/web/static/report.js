/* mmstream report: draws the timeline charts with uPlot from the JSON in #report-data.
   Every number comes laid out from Python (mmstream/web/timeline.py); this only draws. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#e377c2",
                   "#17becf", "#8c564b", "#bcbd22", "#3949ab"];
  const EMOTION_COLORS = { angry: "#d62728", disgust: "#8c564b", fear: "#9467bd",
                           happy: "#f0a202", sad: "#1f77b4", surprise: "#17becf",
                           neutral: "#6b7fa8" };
  const SYNC_KEY = "mmstream-report";
  const charts = [];

  function xRange() {
    const [lo, hi] = data.range;
    return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
  }

  function plotWidth(el) {
    return Math.max(320, el.clientWidth);
  }

  // Only the bottom chart labels the shared x axis (seconds); the others keep its grid.
  function baseOptions(el, height, yAxis, labelled) {
    const xAxis = labelled ? { size: 32, label: "seconds", labelSize: 18 }
                           : { size: 6, values: (u, splits) => splits.map(() => "") };
    return {
      width: plotWidth(el),
      height: height,
      padding: [8, data.pad_right_px, 0, 0],
      legend: { show: false },
      cursor: { sync: { key: SYNC_KEY }, drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: false, range: xRange } },
      axes: [xAxis, Object.assign({ size: data.axis_px, gap: 6 }, yAxis)],
      hooks: { draw: [(u) => { u.root.dataset.drawn = "yes"; }] },  // tests wait for it
    };
  }

  // Rows of labels (scene tags, emotions): a thick line through consecutive windows where a
  // row is present, a dot where it is present alone.
  function rowsChart(el, block, colorOf, labelled) {
    const rows = block.rows;
    const opts = baseOptions(el, 24 * rows.length + (labelled ? 62 : 20), {
      splits: () => rows.map((_, i) => i),
      values: (u, splits) => splits.map((i) => rows[i] || ""),
      grid: { show: false },
      ticks: { show: false },
    }, labelled);
    opts.scales.y = { range: () => [-0.6, rows.length - 0.4] };
    opts.series = [{}].concat(rows.map((name, i) => {
      const color = colorOf(name, i);
      return { label: name, stroke: color, width: 12, spanGaps: false,
               points: { show: true, size: 12, width: 0, fill: color } };
    }));
    return new uPlot(opts, [block.x].concat(block.values), el);
  }

  function valenceChart(el, block, labelled) {
    const opts = baseOptions(el, labelled ? 190 : 150, {
      splits: () => [-1, -0.5, 0, 0.5, 1],
      values: (u, splits) => splits.map((v) => (v > 0 ? "+" : "") + v),
    }, labelled);
    opts.scales.y = { range: () => [-1.05, 1.05] };
    opts.legend = { show: block.series.length > 1 };
    opts.series = [{}].concat(block.series.map((line, i) => ({
      label: line.label, stroke: PALETTE[i % PALETTE.length], width: 2,
      points: { show: true, size: 6 },
    })));
    return new uPlot(opts, [block.x].concat(block.series.map((line) => line.values)), el);
  }

  function emotionColor(name, i) {
    const label = name.split(" · ").pop();
    return EMOTION_COLORS[label] || PALETTE[i % PALETTE.length];
  }

  function draw() {
    const plots = Array.from(document.querySelectorAll("[data-chart]"));
    plots.forEach((el, n) => {
      const kind = el.dataset.chart;
      const labelled = n === plots.length - 1;
      if (kind === "valence") {
        charts.push(valenceChart(el, data.valence, labelled));
      } else {
        const colors = kind === "emotion" ? emotionColor : (name, i) => PALETTE[i % PALETTE.length];
        charts.push(rowsChart(el, data[kind], colors, labelled));
      }
    });
  }

  function resize() {
    for (const chart of charts) {
      chart.setSize({ width: plotWidth(chart.root.parentElement), height: chart.height });
    }
  }

  const partials = document.getElementById("show-partials");
  if (partials) {
    partials.addEventListener("change", () => {
      document.getElementById("transcripts").classList.toggle("with-partials", partials.checked);
    });
  }
  draw();
  window.addEventListener("resize", resize);
  window.mmstreamReport = { charts: charts, data: data };  // for tests and the console
})();
