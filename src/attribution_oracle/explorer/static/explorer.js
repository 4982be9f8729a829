// The explorer's interaction: span filtering, ranking by signal, live rows, charts, wallet claim.
// Everything user-supplied is inserted with textContent (never innerHTML).
(function () {
  "use strict";

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function link(href, text) { return el("a", text, { href: href }); }
  function openAmount(wei) {
    var s = String(wei).padStart(19, "0");
    var whole = s.slice(0, -18).replace(/^0+(?=\d)/, ""), frac = s.slice(-18).replace(/0+$/, "");
    return (frac ? whole + "." + frac.slice(0, 6) : whole) + " OPEN";
  }
  function jsonData(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // ---- spans: clicking a highlighted span filters the contribution panel to the documents holding it
  var spanDocs = jsonData("span-data");
  var panel = document.getElementById("contributions-panel");
  var filterNote = document.getElementById("panel-filter");
  var clear = document.getElementById("panel-clear");
  function showAll() {
    if (!panel) return;
    panel.querySelectorAll("li.doc-card").forEach(function (li) { li.hidden = false; });
    document.querySelectorAll("mark.span.selected").forEach(function (m) { m.classList.remove("selected"); });
    if (filterNote) filterNote.textContent = "";
    if (clear) clear.hidden = true;
  }
  function selectSpan(mark) {
    var ids = (mark.getAttribute("data-spans") || "").split(" ").filter(Boolean).map(Number);
    var docs = {};
    ids.forEach(function (i) { (spanDocs[i] || []).forEach(function (d) { docs[d] = true; }); });
    document.querySelectorAll("mark.span.selected").forEach(function (m) { m.classList.remove("selected"); });
    mark.classList.add("selected");
    var shown = 0;
    panel.querySelectorAll("li.doc-card").forEach(function (li) {
      var keep = !!docs[li.getAttribute("data-contribution")];
      li.hidden = !keep;
      if (keep) shown += 1;
    });
    filterNote.textContent = "holding \u201c" + mark.textContent + "\u201d: " + shown;
    clear.hidden = false;
  }
  if (spanDocs && panel) {
    document.querySelectorAll("mark.span").forEach(function (mark) {
      mark.addEventListener("click", function () { selectSpan(mark); });
      mark.addEventListener("keydown", function (ev) { if (ev.key === "Enter") selectSpan(mark); });
    });
    clear.addEventListener("click", showAll);
  }

  // ---- signals: gradient, span and lexical scores from the model's scorer, then rank the panel by any of them
  var panelSection = document.getElementById("panel");
  var signals = null;
  function rank(kind) {
    if (!panel) return;
    var items = Array.prototype.slice.call(panel.querySelectorAll("li.doc-card"));
    items.sort(function (a, b) {
      var ka = kind === "combined" ? Number(a.getAttribute("data-combined")) : ((signals && signals[kind]) || {})[a.getAttribute("data-contribution")] || 0;
      var kb = kind === "combined" ? Number(b.getAttribute("data-combined")) : ((signals && signals[kind]) || {})[b.getAttribute("data-contribution")] || 0;
      return kb - ka || Number(a.getAttribute("data-contribution")) - Number(b.getAttribute("data-contribution"));
    });
    items.forEach(function (li) { panel.appendChild(li); });
    document.querySelectorAll(".sorter button").forEach(function (b) { b.classList.toggle("active", b.getAttribute("data-rank") === kind); });
  }
  if (panelSection && panel) {
    document.querySelectorAll(".sorter button").forEach(function (b) {
      b.addEventListener("click", function () { rank(b.getAttribute("data-rank")); });
    });
    var status = document.getElementById("signals-status");
    status.textContent = "computing gradient, span and lexical scores…";
    fetch(panelSection.getAttribute("data-signals")).then(function (r) { return r.json(); }).then(function (data) {
      if (!data.available) { status.textContent = data.reason || "signals unavailable"; return; }
      signals = data;
      status.textContent = "";
      panel.querySelectorAll("li.doc-card").forEach(function (li) {
        var cid = li.getAttribute("data-contribution");
        ["gradient", "span", "lexical"].forEach(function (kind) {
          var v = (data[kind] || {})[cid];
          li.querySelector(".s-" + kind).textContent = v === undefined ? "—" : Number(v).toPrecision(4);
        });
      });
    }).catch(function () { status.textContent = "signals unavailable"; });
  }

  // ---- charts (Chart.js, vendored)
  function lineChart(canvasId, dataId, label, type) {
    var canvas = document.getElementById(canvasId), data = jsonData(dataId);
    if (!canvas || !data || typeof Chart === "undefined") return;
    new Chart(canvas, {
      type: type,
      data: { labels: data.labels, datasets: [{ label: label, data: data.values, borderColor: "#b45309", backgroundColor: "rgba(217,119,6,0.45)", tension: 0, pointRadius: 0 }] },
      options: { animation: false, responsive: true, plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: type === "bar" ? "epoch" : "step" } } } },
    });
  }
  lineChart("loss-chart", "loss-data", "training loss", "line");
  lineChart("earnings-chart", "earnings-data", "OPEN", "bar");

  // ---- live: new inferences and epochs appear without a reload
  var liveNodes = document.querySelectorAll("[data-live]");
  if (liveNodes.length) {
    var after = { inferences: 0, epochs: 0 };
    liveNodes.forEach(function (n) { after[n.getAttribute("data-live")] = Number(n.getAttribute("data-after") || 0); });
    function poll() {
      fetch("/api/live?after_inference=" + after.inferences + "&after_epoch=" + after.epochs)
        .then(function (r) { return r.json(); })
        .then(function (data) {
          var head = document.getElementById("live-head");
          if (head) head.textContent = "block " + data.head;
          Object.keys(data.counts).forEach(function (k) {
            document.querySelectorAll('[data-count="' + k + '"]').forEach(function (n) { n.textContent = data.counts[k]; });
          });
          var table = document.querySelector('table[data-live="inferences"] tbody');
          data.inferences.forEach(function (i) {
            after.inferences = Math.max(after.inferences, i.id);
            if (!table) return;
            var empty = table.querySelector("tr.empty"); if (empty) empty.remove();
            var tr = el("tr", null, { "class": "fresh", "data-request": i.id });
            var cells = [link("/inferences/" + i.id, "#" + i.id), link("/models/" + i.model, i.model), link("/contributors/" + i.payer, i.payer.slice(0, 8) + "…" + i.payer.slice(-4)), el("span", openAmount(i.fee)), el("span", i.status)];
            var columns = table.parentNode.querySelectorAll("thead th").length;
            cells.slice(0, columns).forEach(function (c) { var td = el("td"); td.appendChild(c); tr.appendChild(td); });
            while (tr.children.length < columns) tr.appendChild(el("td"));
            table.insertBefore(tr, table.firstChild);
          });
          var etable = document.querySelector('table[data-live="epochs"] tbody');
          data.epochs.forEach(function (e) {
            after.epochs = Math.max(after.epochs, e.epoch);
            if (!etable) return;
            var empty = etable.querySelector("tr.empty"); if (empty) empty.remove();
            var tr = el("tr", null, { "class": "fresh", "data-epoch": e.epoch });
            [link("/epochs/" + e.epoch, e.epoch), el("span", e.inferences), el("span", openAmount(e.total)), el("span", ""), el("span", e.uri), el("span", "")].forEach(function (c) { var td = el("td"); td.appendChild(c); tr.appendChild(td); });
            etable.insertBefore(tr, etable.firstChild);
          });
        })
        .catch(function () {})
        .finally(function () { setTimeout(poll, 2000); });
    }
    setTimeout(poll, 2000);
  }

  // ---- claim with a browser wallet, when one is present (the CLI command is always shown)
  var claimButton = document.getElementById("wallet-claim");
  if (claimButton && window.ethereum) {
    claimButton.hidden = false;
    claimButton.addEventListener("click", function () {
      var note = document.getElementById("wallet-status");
      window.ethereum.request({ method: "eth_requestAccounts" }).then(function (accounts) {
        return window.ethereum.request({ method: "eth_sendTransaction", params: [{ from: accounts[0], to: claimButton.getAttribute("data-to"), data: claimButton.getAttribute("data-data") }] });
      }).then(function (tx) { note.textContent = "sent " + tx; }).catch(function (err) { note.textContent = "not sent: " + (err && err.message ? err.message : err); });
    });
  }
})();
