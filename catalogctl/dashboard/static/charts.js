// Charts of the runs (uPlot, served by this app from static/vendor/).
const d = JSON.parse(document.getElementById("chart-data").textContent);
if (d.x.length) {
  const w = Math.min(1000, document.body.clientWidth - 40);
  const s = (label, stroke) => ({ label, stroke, width: 2 });
  new uPlot({ title: "Items per run", width: w, height: 260,
    series: [{}, s("new", "#2563eb"), s("changed", "#7c3aed"), s("deleted", "#6b7280"), s("sent", "#16a34a"), s("failed", "#dc2626")] },
    [d.x, d.new, d.changed, d.deleted, d.sent, d.failed], document.getElementById("chart-counts"));
  new uPlot({ title: "Run duration (s)", width: w, height: 200, series: [{}, s("duration", "#d97706")] },
    [d.x, d.duration], document.getElementById("chart-duration"));
}
