// The start page: memory search (results link to the 3D view) and the jobs panel (progress, cancel).
const $ = (id) => document.getElementById(id);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "-" : Number(x).toFixed(digits);
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let data;
  try { data = await response.json(); } catch { data = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

async function search(q) {
  const status = $("search-status"), table = $("search-results"), body = table.querySelector("tbody");
  status.className = "";
  status.textContent = "searching...";
  try {
    const data = await getJSON(`/web/api/search?q=${encodeURIComponent(q)}&n=20`);
    body.replaceChildren();
    for (const hit of data.hits) {
      const tr = document.createElement("tr");
      const td = document.createElement("td"), a = document.createElement("a");
      a.href = `/web/structure/${encodeURIComponent(hit.id)}`;
      a.textContent = hit.id;
      td.append(a);
      tr.append(td, cell(hit.reduced_formula), cell(`${hit.spacegroup} (${hit.spacegroup_number})`), cell(hit.n_sites),
                cell(fmt(hit.energy_per_atom_eV, 4)), cell(fmt(hit.score, 3)));
      body.append(tr);
    }
    table.hidden = data.hits.length === 0;
    const how = data.arguments.formula ? `formula ${data.arguments.formula}` : `text "${data.arguments.query}"`;
    status.textContent = `${data.hits.length} structure(s) for ${how} (${data.mode} search)`;
  } catch (err) {
    status.textContent = err.message;
    status.className = "error";
    table.hidden = true;
  }
}

async function cancel(jobId, button) {
  button.disabled = true;
  try {
    await getJSON(`/web/api/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" });
    $("jobs-status").textContent = `asked job ${jobId} to stop`;
  } catch (err) {
    $("jobs-status").textContent = err.message;
    $("jobs-status").className = "error";
  }
  refreshJobs();
}

async function refreshJobs() {
  const body = $("jobs").querySelector("tbody");
  try {
    const data = await getJSON("/web/api/jobs?limit=50");
    body.replaceChildren();
    if (data.jobs.length === 0) {
      const tr = document.createElement("tr");
      const td = cell("no jobs yet");
      td.colSpan = 6;
      tr.append(td);
      body.append(tr);
    }
    for (const job of data.jobs) {
      const tr = document.createElement("tr");
      tr.dataset.jobId = job.job_id;
      const prog = document.createElement("td");
      const bar = document.createElement("progress");
      if (job.total) { bar.max = job.total; bar.value = Math.min(job.progress, job.total); }
      else if (job.state === "succeeded") { bar.max = 1; bar.value = 1; }
      bar.setAttribute("aria-label", `progress of ${job.job_id}`);
      prog.append(bar, ` ${job.message || ""}`);
      const act = document.createElement("td");
      if (job.state === "queued" || job.state === "running") {
        const button = document.createElement("button");
        button.textContent = "Cancel";
        button.setAttribute("aria-label", `cancel job ${job.job_id}`);
        button.addEventListener("click", () => cancel(job.job_id, button));
        act.append(button);
      }
      const times = `${fmt(job.elapsed_seconds, 0)} s / ${job.estimated_seconds ? fmt(job.estimated_seconds, 0) + " s" : "-"}`;
      tr.append(cell(job.job_id), cell(job.tool), cell(job.state + (job.error ? `: ${job.error}` : ""),
                `state-${job.state}`), prog, cell(times), act);
      body.append(tr);
    }
  } catch (err) {
    $("jobs-status").textContent = err.message;
    $("jobs-status").className = "error";
  }
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("search-q").value.trim();
  if (q) {
    history.replaceState(null, "", `?q=${encodeURIComponent(q)}`);
    search(q);
  }
});
if ($("search-q").value.trim()) search($("search-q").value.trim());
refreshJobs();
setInterval(refreshJobs, 2000);
