// Follows a running job: appends new events and updates the status until the job has finished.
(function () {
  "use strict";
  const table = document.getElementById("job-events");
  if (!table || table.dataset.running !== "true") return;
  const body = table.querySelector("tbody");
  const status = document.getElementById("job-status");
  const duration = document.getElementById("job-duration");
  const cell = (text) => { const td = document.createElement("td"); td.textContent = text == null ? "" : String(text); return td; };
  async function poll() {
    const after = table.dataset.after || "0";
    try {
      const response = await fetch(`/api/jobs/${table.dataset.job}?after=${after}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const job = await response.json();
      for (const e of job.events) {
        const tr = document.createElement("tr");
        if (e.failed) tr.className = "failed"; else if (e.changed) tr.className = "changed";
        [e.seq, e.event, e.host, e.task, e.message].forEach((v) => tr.appendChild(cell(v)));
        body.appendChild(tr);
        table.dataset.after = String(e.seq);
      }
      status.dataset.status = job.status;
      status.textContent = job.status;
      if (job.duration_s != null) duration.textContent = String(job.duration_s);
      if (job.status === "queued" || job.status === "running") setTimeout(poll, 1000);
      else window.location.reload();  // the finished record: stats and localised status
    } catch (err) {
      setTimeout(poll, 3000);
    }
  }
  setTimeout(poll, 1000);
})();
