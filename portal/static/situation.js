// 态势感知: fetch /api/soc/situation and draw it with Apache ECharts; refresh every 30 s while enabled.
(() => {
  const labels = JSON.parse(document.getElementById("situation-labels").textContent);
  const charts = {};
  const sevColor = { critical: "#8e0000", high: "#c62828", medium: "#e08a00", low: "#5c7080" };
  let timer = null;

  const chart = (id) => {
    if (!charts[id]) charts[id] = echarts.init(document.getElementById(id), null, { renderer: "svg" });
    return charts[id];
  };
  const empty = (id) => chart(id).setOption({
    title: { text: labels.none, left: "center", top: "middle", textStyle: { color: "#7b8794", fontSize: 13, fontWeight: 400 } },
  }, true);
  const hbar = (id, names, values, color) => names.length === 0 ? empty(id) : chart(id).setOption({
    grid: { left: 140, right: 24, top: 8, bottom: 24 },
    xAxis: { type: "value", minInterval: 1 },
    yAxis: { type: "category", data: names, inverse: true, axisLabel: { width: 130, overflow: "truncate" } },
    series: [{ type: "bar", data: values, itemStyle: { color } }],
    tooltip: {},
  }, true);
  const time = (iso) => iso.slice(5, 16).replace("T", " ");
  // a department cell: its name from the register, the code as secondary text and tooltip
  const department = (td, a) => {
    const code = Object.assign(document.createElement("small"), { className: "hint", textContent: a.department });
    td.replaceChildren(a.department_name, " ", code);
    td.title = a.department;
    td.dataset.code = a.department;
  };

  function draw(d) {
    document.getElementById("k-events").textContent = d.events_total;
    document.getElementById("k-open").textContent = d.open_alerts;
    document.getElementById("k-overdue").textContent = d.overdue_total;
    const ipTotal = d.ip_versions.ipv4 + d.ip_versions.ipv6;
    document.getElementById("k-ipv6").textContent = ipTotal ? `${(100 * d.ip_versions.ipv6 / ipTotal).toFixed(1)}%` : "—";

    const keys = [...new Set([...d.events_over_time.map((b) => b.key), ...d.alerts_over_time.map((b) => b.key)])].sort();
    const byKey = (list) => Object.fromEntries(list.map((b) => [b.key, b.count]));
    const ev = byKey(d.events_over_time), al = byKey(d.alerts_over_time);
    chart("c-timeline").setOption({
      legend: { data: [labels.events, labels.alerts] }, tooltip: { trigger: "axis" },
      grid: { left: 56, right: 56, top: 32, bottom: 32 },
      xAxis: { type: "category", data: keys.map(time) },
      yAxis: [{ type: "value", name: labels.events, minInterval: 1 }, { type: "value", name: labels.alerts, minInterval: 1 }],
      series: [
        { name: labels.events, type: "line", smooth: true, areaStyle: {}, data: keys.map((k) => ev[k] || 0) },
        { name: labels.alerts, type: "bar", yAxisIndex: 1, data: keys.map((k) => al[k] || 0), itemStyle: { color: "#c62828" } },
      ],
    }, true);
    chart("c-severity").setOption({
      tooltip: {}, series: [{ type: "pie", radius: ["40%", "70%"],
        data: Object.entries(d.severity).filter(([, n]) => n > 0)
          .map(([s, n]) => ({ name: labels.severity[s], value: n, itemStyle: { color: sevColor[s] } })) }],
    }, true);
    chart("c-ipv").setOption({
      tooltip: {}, series: [{ type: "pie", radius: "65%",
        data: [{ name: "IPv4", value: d.ip_versions.ipv4 }, { name: "IPv6", value: d.ip_versions.ipv6 }].filter((x) => x.value > 0) }],
    }, true);
    hbar("c-sources", d.top_sources.map((s) => s.ip), d.top_sources.map((s) => s.count), "#c62828");
    hbar("c-systems", d.top_systems.map((s) => s.name), d.top_systems.map((s) => s.alerts), "#1d4e89");
    hbar("c-departments", d.top_departments.map((s) => s.name), d.top_departments.map((s) => s.alerts), "#1d4e89");
    hbar("c-risk", d.department_risk.map((s) => s.name), d.department_risk.map((s) => s.score), "#e08a00");
    const max = Math.max(1, ...d.attack_heatmap.cells.map((c) => c[2]));
    chart("c-heatmap").setOption({
      tooltip: {}, grid: { left: 170, right: 24, top: 8, bottom: 64 },
      xAxis: { type: "category", data: d.attack_heatmap.days },
      yAxis: { type: "category", data: d.attack_heatmap.tactics.map((t) => labels.tactics[t] || t) },
      visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                   inRange: { color: ["#fdecea", "#8e0000"] } },
      series: [{ type: "heatmap", label: { show: true },
                 data: d.attack_heatmap.cells.map(([t, day, n]) => [d.attack_heatmap.days.indexOf(day), d.attack_heatmap.tactics.indexOf(t), n]) }],
    }, true);
    const body = document.querySelector("#overdue tbody");
    body.replaceChildren(...(d.overdue.length ? d.overdue.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.id = a.id;
      const cells = [a.id, labels.severity[a.severity], a.title, a.department || "—", time(a.resolve_due)].map((text) => {
        const td = document.createElement("td");
        td.textContent = text;
        return td;
      });
      if (a.department_name) department(cells[3], a);
      tr.append(...cells);
      return tr;
    }) : [Object.assign(document.createElement("tr"), { innerHTML: `<td colspan="5">${labels.none}</td>` })]));
    const stamp = document.getElementById("situation-updated");
    stamp.textContent = `${labels.updated} ${new Date().toLocaleTimeString("zh-CN", { hour12: false })}`;
    stamp.dataset.loaded = String(Number(stamp.dataset.loaded || 0) + 1);
  }

  async function load() {
    const hours = document.getElementById("s-hours").value;
    const error = document.getElementById("situation-error");
    try {
      const response = await fetch(`/api/soc/situation?hours=${hours}`, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
      draw(await response.json());
      error.hidden = true;
    } catch (exc) {
      error.textContent = `${labels.failed}: ${exc.message}`;
      error.hidden = false;
    }
  }

  function schedule() {
    clearInterval(timer);
    const seconds = Number(document.getElementById("situation-updated").dataset.refresh);
    if (document.getElementById("s-auto").checked) timer = setInterval(load, seconds * 1000);
  }

  document.getElementById("s-hours").addEventListener("change", load);
  document.getElementById("s-auto").addEventListener("change", schedule);
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  if (typeof echarts === "undefined") {
    const error = document.getElementById("situation-error");
    error.textContent = labels.no_charts;
    error.hidden = false;
    return;
  }
  load();
  schedule();
})();
