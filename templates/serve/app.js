// The live status page (cutover.serve): polls /api/status and puts every value into the page
// as text (textContent, never innerHTML): titles, names and reasons come from outside the plan
// author and may be hostile. The page changes nothing; it only reads.
"use strict";
(function () {
  const STATES = new Set(["pending", "running", "waiting", "done", "partial", "failed", "interrupted",
                          "overridden"]);
  const body = document.body;
  const every = Math.max(1, Number(body.dataset.poll) || 3) * 1000;
  const department = body.dataset.department;
  const api = "/api/status" + (department ? "?department=" + encodeURIComponent(department) : "");
  const was = new Map(); // site|phase -> the state a cell had before it last changed
  const seen = new Map(); // site|phase -> the state shown now
  let polls = 0;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null && text !== "") node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function known(state) { return STATES.has(state) ? state : "other"; }
  function fill(id, nodes) {
    const box = document.getElementById(id);
    if (box) box.replaceChildren(...nodes);
  }
  function row(cells, tag) {
    const tr = el("tr");
    for (const cell of cells) tr.append(typeof cell === "object" ? cell : el(tag || "td", cell));
    return tr;
  }

  function matrix(m) {
    if (!m) { fill("sites-matrix", [row(["The inventory declares no sites (cutover_sites): one site."])]); return; }
    const head = row(["site"], "th");
    for (const phase of m.phases) {
      const th = el("th");
      th.append(el("code", phase.id), " " + phase.title, el("br"), el("span", "planned " + phase.planned, "meta"));
      th.dataset.phase = phase.id;
      head.append(th);
    }
    head.append(el("th", "actual"));
    const rows = [head];
    for (const r of m.rows) {
      const tr = el("tr");
      tr.dataset.site = r.site;
      const th = el("th", null, "level-" + r.level.replace(/[^a-z]/g, ""));
      th.append(r.name + " ", el("code", r.site));
      tr.append(th);
      for (const phase of m.phases) {
        const cell = r.cells[phase.id];
        const key = r.site + "|" + phase.id;
        const state = cell ? cell.state : "none";
        const td = el("td", cell ? state : "—", cell ? known(state) : "none");
        td.dataset.phase = phase.id;
        if (seen.has(key) && seen.get(key) !== state) {
          was.set(key, seen.get(key));
          td.classList.add("changed");
        }
        seen.set(key, state);
        if (was.has(key)) td.dataset.was = was.get(key);
        if (cell && cell.actual) td.append(el("br"), el("small", cell.actual));
        tr.append(td);
      }
      tr.append(el("td", r.actual));
      rows.push(tr);
    }
    fill("sites-matrix", rows);
  }

  function badges(step) {
    const out = [];
    if (step.late) out.push(el("span", "LATE 超时", "badge late"));
    if (step.at_risk) out.push(el("span", "AT RISK 可能超时", "badge at-risk"));
    return out;
  }

  function timeline(data) {
    const t = data.timeline;
    document.getElementById("now-note").textContent = "now on the plan's time line: " + data.clock.plan_now +
      (data.clock.rehearsal_run ? " (rehearsal run " + data.clock.rehearsal_run + ": its clock maps the plan onto it)" : "") +
      (t.now_side ? " — " + t.now_side + " the plan's window" : "");
    const rows = [];
    for (const step of data.steps) {
      const line = el("div", null, "tl-row");
      line.dataset.step = step.id;
      const label = el("div", null, "tl-label");
      label.append(el("code", step.id), " " + step.title, ...badges(step));
      label.title = step.id + " " + step.title + " — planned " + step.planned + (step.actual ? ", actual " + step.actual : "");
      const track = el("div", null, "tl-track");
      const bar = t.bars[step.id];
      if (bar) {
        const b = el("div", null, "tl-bar " + known(step.state));
        b.style.left = Number(bar.left) + "%";
        b.style.width = Number(bar.width) + "%";
        b.title = "planned " + step.planned;
        track.append(b);
      }
      if (t.now_pct !== null && t.now_pct !== undefined) {
        const now = el("div", null, "tl-now");
        now.style.left = Number(t.now_pct) + "%";
        track.append(now);
      }
      line.append(label, track);
      rows.push(line);
    }
    fill("timeline", rows);
  }

  function steps(data) {
    const heads = ["step", "state", data.department ? "role" : "phase", "责任部门", "配合部门", "planned",
                   "actual", "forecast", "evidence / acted"];
    const rows = [row(heads, "th")];
    for (const step of data.steps) {
      const first = el("td");
      first.append(el("code", step.id), el("br"), step.title);
      const state = el("td", step.state, known(step.state));
      state.append(...badges(step));
      const tr = row([first, state, data.department ? step.role : step.phase, step.owner || "—",
                      step.cooperating.join("、") || "—", step.planned, step.actual, step.forecast,
                      [step.evidence_summary, step.acted_by.join(", ")].filter(Boolean).join("; ")]);
      tr.dataset.step = step.id;
      rows.push(tr);
    }
    fill("steps", rows);
  }

  function listOf(items, none, build) {
    return items.length ? items.map(build) : [el("li", none)];
  }

  function render(data) {
    const off = document.getElementById("called-off");
    off.hidden = !data.called_off;
    off.textContent = data.called_off ? "CALLED OFF 已取消 by " + data.called_off.by + " at " + data.called_off.at +
      " (" + data.called_off.status + "): " + data.called_off.reason : "";
    if (!department) matrix(data.matrix);
    if (data.department) {
      fill("waiting", listOf(data.department.waiting, "nothing waits for a confirmation", (w) => {
        const li = el("li");
        li.append(el("code", w.step), " " + w.title + (w.sites.length ? " — sites still to confirm: " + w.sites.join(", ") : ""));
        return li;
      }));
    }
    fill("deadlines", listOf(data.deadlines, "no time ahead", (d) => {
      const li = el("li");
      li.append(el("b", "in " + d.in), " " + d.kind + " " + d.at + " ", el("code", d.step), " " + d.title);
      return li;
    }));
    timeline(data);
    steps(data);
    fill("log", listOf(data.log, "nothing yet", (entry) => {
      const li = el("li");
      li.append(entry.at + " ", el("span", entry.kind, "kind"));
      if (entry.who) li.append(" ", el("b", entry.who));
      if (entry.step) li.append(" ", el("code", entry.step));
      if (entry.site) li.append(" @" + entry.site);
      if (entry.text) li.append(": " + entry.text);
      if (!entry.ok) li.append(" ", el("span", "NOT delivered", "failed"));
      if (entry.detail) {
        const more = el("details");
        more.append(el("summary", "message"), el("pre", entry.detail));
        li.append(more);
      }
      return li;
    }));
  }

  async function refresh() {
    const updated = document.getElementById("updated");
    try {
      const answer = await fetch(api, { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      const data = await answer.json();
      render(data);
      polls += 1;
      document.documentElement.dataset.polls = String(polls);
      updated.textContent = "updated " + data.generated + " (every " + every / 1000 + " s)";
      updated.className = "";
    } catch (err) {
      updated.textContent = "NOT updated: " + err.message + " (trying again)";
      updated.className = "failed";
    }
    setTimeout(refresh, every);
  }
  refresh();
})();
