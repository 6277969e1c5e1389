(function () {
  "use strict";
  function cellValue(td, type) {
    var v = td.hasAttribute("data-v") ? td.getAttribute("data-v") : td.textContent;
    if (type === "num") { var f = parseFloat(v); return isNaN(f) ? -Infinity : f; }
    return v;
  }
  function makeSortable(table) {
    var ths = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths, function (th, col) {
      th.addEventListener("click", function () {
        var type = th.getAttribute("data-type") || "text";
        var asc = !th.classList.contains("asc");
        Array.prototype.forEach.call(ths, function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a.cells[col], type), y = cellValue(b.cells[col], type);
          var c = type === "num" ? x - y : String(x).localeCompare(String(y), "zh");
          return asc ? c : -c;
        });
        var frag = document.createDocumentFragment();
        rows.forEach(function (r) { frag.appendChild(r); });
        body.appendChild(frag);
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);

  // Aggregate charts: clicking a legend key highlights that group's line, clicking again shows all.
  Array.prototype.forEach.call(document.querySelectorAll(".agg"), function (block) {
    var keys = block.querySelectorAll(".key.pick");
    Array.prototype.forEach.call(keys, function (key) {
      key.addEventListener("click", function () {
        var label = key.getAttribute("data-label");
        var on = !key.classList.contains("on");
        Array.prototype.forEach.call(keys, function (k) { k.classList.toggle("on", on && k === key); });
        Array.prototype.forEach.call(block.querySelectorAll("g.s"), function (g) {
          g.classList.toggle("dim", on && g.getAttribute("data-label") !== label);
        });
      });
    });
  });

  var dataNode = document.getElementById("drill-data");
  if (!dataNode) { return; }
  var drill = JSON.parse(dataNode.textContent);
  var select = document.getElementById("drill-rule");
  var filter = document.getElementById("drill-filter");
  var body = document.querySelector("#drill-table tbody");
  var count = document.getElementById("drill-count");
  function td(text, num) {
    var cell = document.createElement("td");
    cell.textContent = text === null || text === undefined ? "" : String(text);
    if (num) { cell.setAttribute("data-v", text === null ? "" : String(text)); }
    return cell;
  }
  function render() {
    var entry = drill[select.value] || {total: 0, rows: []};
    var needle = filter.value.trim();
    var frag = document.createDocumentFragment();
    var shown = 0;
    entry.rows.forEach(function (row) {
      if (needle && String(row[0]).indexOf(needle) < 0 && String(row[1]).indexOf(needle) < 0) { return; }
      var tr = document.createElement("tr");
      tr.appendChild(td(row[0])); tr.appendChild(td(row[1]));
      tr.appendChild(td(row[2], true)); tr.appendChild(td(row[3])); tr.appendChild(td(row[4]));
      tr.appendChild(td(row[5])); tr.appendChild(td(row[6], true));
      tr.cells[0].className = "mono";
      frag.appendChild(tr);
      shown += 1;
    });
    body.textContent = "";
    body.appendChild(frag);
    count.textContent = "显示 " + shown + " 件 / 页内 " + entry.rows.length + " 件 / 共 " + entry.total + " 件不合格";
  }
  select.addEventListener("change", render);
  filter.addEventListener("input", render);
  Array.prototype.forEach.call(document.querySelectorAll("a.to-drill"), function (a) {
    a.addEventListener("click", function () {
      var rule = a.getAttribute("data-rule");
      if (drill[rule]) { select.value = rule; filter.value = ""; render(); }
    });
  });
  render();
})();
