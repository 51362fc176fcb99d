// The start page: memory search (results link to the 3D view) and the jobs panel (progress, cancel). A running job's
// progress streams in as server-sent events; the panel polls every 2 s only where EventSource fails.
const $ = (id) => document.getElementById(id);
const following = new Map();  // job id -> the EventSource streaming its progress
let polling = false;

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
    const args = data.arguments;
    const how = args.similar_to ? `structures like ${args.similar_to.id}`
      : args.formula ? `formula ${args.formula}` : `text "${args.query}"`;
    status.textContent = `${data.hits.length} structure(s) for ${how} (${data.mode} search)`;
  } catch (err) {
    status.textContent = err.message;
    status.className = "error";
    table.hidden = true;
  }
}

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

const STRUCTURE_ID = /^s-[0-9a-f]{16}$/;

function collectLinks(value, ids, artifacts) {
  if (typeof value === "string") {
    if (STRUCTURE_ID.test(value)) ids.add(value);
    else if (value.startsWith("artifact://")) artifacts.add(value.slice("artifact://".length));
  } else if (Array.isArray(value)) {
    value.forEach((v) => collectLinks(v, ids, artifacts));
  } else if (value && typeof value === "object") {
    Object.values(value).forEach((v) => collectLinks(v, ids, artifacts));
  }
}

async function showJob(jobId) {
  const panel = $("job-detail");
  panel.hidden = false;
  panel.dataset.jobId = jobId;
  panel.replaceChildren();
  const h = document.createElement("h2");
  h.textContent = `Job ${jobId}`;
  panel.append(h);
  try {
    const job = await getJSON(`/web/api/jobs/${encodeURIComponent(jobId)}`);
    const p = document.createElement("p");
    p.textContent = `${job.tool}: ${job.state}` + (job.error ? ` (${job.error})` : "") +
      (job.message ? `; ${job.message}` : "");
    panel.append(p);
    if (job.result && Array.isArray(job.result.ranked) && job.result.ranked.length) {
      panel.append(rankedTable(job.result.ranked));
    }
    const ids = new Set(), artifacts = new Set();
    collectLinks(job.result, ids, artifacts);
    for (const [title, items, href] of [["Structures", ids, (x) => `/web/structure/${encodeURIComponent(x)}`],
                                        ["Files", artifacts, (x) => `/web/artifact/${x.split("/").map(encodeURIComponent).join("/")}`]]) {
      if (items.size === 0) continue;
      const h3 = document.createElement("h3");
      h3.textContent = title;
      const ul = document.createElement("ul");
      for (const item of items) {
        const li = document.createElement("li"), a = document.createElement("a");
        a.href = href(item);
        a.textContent = item;
        li.append(a);
        if (title === "Files" && /\.(extxyz|xyz)$/.test(item)) {
          const play = document.createElement("a");
          play.href = `/web/trajectory/${item.split("/").map(encodeURIComponent).join("/")}`;
          play.textContent = "play in 3D";
          li.append(" (", play, ")");
        }
        if (title === "Files" && item.endsWith(".png")) {
          const img = document.createElement("img");
          img.src = a.href;
          img.alt = item;
          img.className = "plot";
          li.append(document.createElement("br"), img);
        }
        ul.append(li);
      }
      panel.append(h3, ul);
    }
    if (job.result) {
      const pre = document.createElement("pre");
      const text = JSON.stringify(job.result, null, 1);
      pre.textContent = text.length > 20000 ? text.slice(0, 20000) + "\n..." : text;
      const det = document.createElement("details"), sum = document.createElement("summary");
      sum.textContent = "Result (JSON)";
      det.append(sum, pre);
      panel.append(det);
    }
  } catch (err) {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = err.message;
    panel.append(p);
  }
}

const RANKED_COLUMNS = [
  ["rank", "rank"], ["id", "structure"], ["formula", "formula"], ["family", "family"],
  ["family_match", "family matches"], ["spacegroup", "space group"], ["generator", "made by"],
  ["e_above_hull_eV", "E_hull (eV/atom)"], ["formation_energy_per_atom_eV", "E_form (eV/atom)"],
  ["converged", "converged"], ["parent_id", "from"],
];

function rankedTable(ranked) {
  // A search's ranked candidates; each header sorts by its column (again: the other way), nulls last.
  const wrap = document.createElement("div");
  const h3 = document.createElement("h3");
  h3.textContent = "Ranked candidates";
  const table = document.createElement("table");
  table.className = "ranked";
  const head = document.createElement("tr"), body = document.createElement("tbody");
  const rows = [...ranked];
  let sortKey = "rank", ascending = true;
  const draw = () => {
    body.replaceChildren();
    for (const c of rows) {
      const tr = document.createElement("tr");
      for (const [key] of RANKED_COLUMNS) {
        const td = document.createElement("td"), v = c[key];
        if ((key === "id" || key === "parent_id") && v) {
          const a = document.createElement("a");
          a.href = `/web/structure/${encodeURIComponent(v)}`;
          a.textContent = v;
          td.append(a);
          if (key === "parent_id") {
            const cmp = document.createElement("a");
            cmp.href = `/web/compare?ids=${encodeURIComponent(v)},${encodeURIComponent(c.id)}`;
            cmp.textContent = "compare";
            td.append(" (", cmp, ")");
          }
        } else if (typeof v === "boolean") {
          td.textContent = v ? "yes" : "no";
        } else if (typeof v === "number" && key !== "rank") {
          td.textContent = v.toFixed(4);
        } else {
          td.textContent = v === null || v === undefined ? "-" : String(v);
        }
        tr.append(td);
      }
      body.append(tr);
    }
  };
  for (const [key, label] of RANKED_COLUMNS) {
    const th = document.createElement("th"), b = document.createElement("button");
    b.textContent = label;
    b.className = "sort";
    b.setAttribute("aria-label", `sort by ${label}`);
    b.addEventListener("click", () => {
      ascending = sortKey === key ? !ascending : true;
      sortKey = key;
      rows.sort((x, y) => {
        const a = x[key], z = y[key];
        if (a === null || a === undefined) return 1;
        if (z === null || z === undefined) return -1;
        const cmp = typeof a === "number" ? a - z : String(a).localeCompare(String(z));
        return ascending ? cmp : -cmp;
      });
      table.querySelectorAll("th").forEach((t) => t.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      draw();
    });
    th.append(b);
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  table.append(thead, body);
  draw();
  wrap.append(h3, table);
  return wrap;
}

async function resume(jobId, b) {
  b.disabled = true;
  try {
    const job = await getJSON(`/web/api/jobs/${encodeURIComponent(jobId)}/resume`, { method: "POST" });
    $("jobs-status").textContent = `job ${jobId} resumed as ${job.job_id}`;
  } catch (err) {
    $("jobs-status").textContent = err.message;
    $("jobs-status").className = "error";
  }
  refreshJobs();
}

async function upload(ev) {
  ev.preventDefault();
  const status = $("upload-status"), file = $("upload-file").files[0];
  status.className = "";
  if (!file) {
    status.textContent = "choose a CIF, POSCAR or extxyz file first";
    status.className = "error";
    return;
  }
  status.textContent = `storing ${file.name}...`;
  const description = $("upload-description").value.trim();
  const query = description ? `?description=${encodeURIComponent(description)}` : "";
  try {
    const out = await getJSON(`/web/api/store${query}`, { method: "POST", body: file });
    status.replaceChildren(`${out.deduplicated ? "already in memory" : "stored"}: `);
    const a = document.createElement("a");
    a.href = out.url;
    a.textContent = out.id;
    status.append(a);
  } catch (err) {
    status.textContent = `${file.name}: ${err.message}`;
    status.className = "error";
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
      prog.className = "progress";
      fillProgress(prog, job);
      const act = document.createElement("td");
      const details = button("Details", `details of job ${job.job_id}`, () => showJob(job.job_id));
      act.append(details);
      if (job.state === "queued" || job.state === "running") {
        const b = button("Cancel", `cancel job ${job.job_id}`, () => cancel(job.job_id, b));
        act.append(" ", b);
      } else if (["failed", "cancelled", "interrupted"].includes(job.state) && !job.resumed_as) {
        const b = button("Resume", `resume job ${job.job_id}`, () => resume(job.job_id, b));
        act.append(" ", b);
      }
      const times = `${fmt(job.elapsed_seconds, 0)} s / ${job.estimated_seconds ? fmt(job.estimated_seconds, 0) + " s" : "-"}`;
      tr.append(cell(job.job_id), cell(job.tool), cell(job.state + (job.error ? `: ${job.error}` : ""),
                `state-${job.state}`), prog, cell(times), act);
      body.append(tr);
      if (job.state === "queued" || job.state === "running") followJob(job.job_id);
    }
  } catch (err) {
    $("jobs-status").textContent = err.message;
    $("jobs-status").className = "error";
  }
}

function fillProgress(td, job) {
  const bar = document.createElement("progress");
  if (job.total) { bar.max = job.total; bar.value = Math.min(job.progress, job.total); }
  else if (job.state === "succeeded") { bar.max = 1; bar.value = 1; }
  bar.setAttribute("aria-label", `progress of ${job.job_id}`);
  td.replaceChildren(bar, ` ${job.message || ""}`);
}

function followJob(jobId) {
  // Stream a running job's progress into its row; at its end refresh the table (and its open details).
  if (polling || following.has(jobId)) return;
  const source = new EventSource(`/web/api/jobs/${encodeURIComponent(jobId)}/events`);
  following.set(jobId, source);
  const stop = () => { source.close(); following.delete(jobId); };
  source.addEventListener("progress", (msg) => {
    const job = JSON.parse(msg.data);
    const row = $("jobs").querySelector(`tr[data-job-id="${CSS.escape(jobId)}"]`);
    if (!row) return;
    fillProgress(row.querySelector("td.progress"), job);
    row.children[2].textContent = job.state;
    row.children[2].className = `state-${job.state}`;
  });
  source.addEventListener("done", () => {
    stop();
    refreshJobs();
    if (!$("job-detail").hidden && $("job-detail").dataset.jobId === jobId) showJob(jobId);
  });
  source.onerror = () => { stop(); startPolling(); };
}

function startPolling() {
  if (polling) return;
  polling = true;
  for (const source of following.values()) source.close();
  following.clear();
  setInterval(refreshJobs, 2000);
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("search-q").value.trim();
  if (q) {
    history.replaceState(null, "", `?q=${encodeURIComponent(q)}`);
    search(q);
  }
});
$("upload-form").addEventListener("submit", upload);
if ($("search-q").value.trim()) search($("search-q").value.trim());
refreshJobs();
if (!("EventSource" in window)) startPolling();
else setInterval(refreshJobs, 15000);  // only to list jobs started elsewhere (over MCP); progress streams
