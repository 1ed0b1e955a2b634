// Sortable tables (click a header), and a job page that follows its progress.
document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("thead th").forEach((th, col) => {
    th.addEventListener("click", () => {
      const body = table.tBodies[0];
      const dir = th.dataset.dir === "asc" ? -1 : 1;
      th.dataset.dir = dir === 1 ? "asc" : "desc";
      const val = (tr) => {
        const td = tr.children[col];
        const v = td ? (td.dataset.sort ?? td.textContent.trim()) : "";
        const n = Number(v.replace(/,/g, ""));
        return v !== "" && !Number.isNaN(n) ? n : v;
      };
      [...body.rows].sort((a, b) => { const x = val(a), y = val(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; })
        .forEach((tr) => body.appendChild(tr));
    });
  });
});
const status = document.getElementById("job-status");
if (status && status.textContent === "running") {
  const poll = () => fetch(status.dataset.job).then((r) => r.json()).then((j) => {
    status.textContent = j.status;
    document.getElementById("job-lines").textContent = j.lines.join("\n");
    document.getElementById("job-error").textContent = j.error || "";
    if (j.status === "running") setTimeout(poll, 500);
  });
  setTimeout(poll, 300);
}
