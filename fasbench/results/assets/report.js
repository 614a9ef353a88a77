// fasbench report: the leaderboard switcher and sorter. No library, no network; data from #report-data.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var keys = ["suite", "convention", "selection", "threshold_policy", "level"];
  var table = document.getElementById("board");
  var caption = document.getElementById("caption");
  var missing = document.getElementById("missing");
  var showReported = document.getElementById("show-reported");
  var sort = { key: null, descending: false };

  function unique(values) {
    return values.filter(function (v, i) { return values.indexOf(v) === i; }).sort();
  }

  function select(key) { return document.getElementById("pick-" + key); }

  keys.forEach(function (key) {
    var element = select(key);
    unique(data.boards.map(function (b) { return b[key]; })).forEach(function (value) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      element.appendChild(option);
    });
    element.value = data["default"][key];
    element.addEventListener("change", render);
  });
  showReported.addEventListener("change", render);

  function current() {
    return data.boards.find(function (board) {
      return keys.every(function (key) { return board[key] === select(key).value; });
    });
  }

  function cell(tag, text, className) {
    var element = document.createElement(tag);
    element.textContent = text;
    if (className) { element.className = className; }
    return element;
  }

  function ordered(board) {
    var rows = board.rows.slice();
    if (sort.key === null) { return rows; }
    rows.sort(function (a, b) {
      var x = a.cells[sort.key], y = b.cells[sort.key];
      if (!x && !y) { return 0; }
      if (!x) { return 1; }
      if (!y) { return -1; }
      return sort.descending ? y.mean - x.mean : x.mean - y.mean;
    });
    return rows;
  }

  function render() {
    var board = current();
    table.textContent = "";
    missing.hidden = Boolean(board);
    caption.textContent = board ? board.caption : "";
    if (!board) { return; }
    var head = document.createElement("thead");
    var groups = document.createElement("tr");
    var metrics = document.createElement("tr");
    groups.appendChild(cell("th", "Learner"));
    metrics.appendChild(cell("th", ""));
    var previous = null, span = null;
    board.columns.forEach(function (column) {
      if (column.protocol !== previous) {
        span = cell("th", column.protocol, "protocol");
        span.colSpan = 1;
        groups.appendChild(span);
        previous = column.protocol;
      } else {
        span.colSpan += 1;
      }
      var title = cell("th", column.metric + (sort.key === column.key ? (sort.descending ? " ▼" : " ▲") : ""), "sortable");
      title.setAttribute("data-key", column.key);
      title.addEventListener("click", function () {
        sort.descending = sort.key === column.key ? !sort.descending : column.higher;
        sort.key = column.key;
        render();
      });
      metrics.appendChild(title);
    });
    head.appendChild(groups);
    head.appendChild(metrics);
    table.appendChild(head);
    var body = document.createElement("tbody");
    ordered(board).forEach(function (row) {
      var line = document.createElement("tr");
      line.className = "learner";
      line.appendChild(cell("th", row.learner));
      board.columns.forEach(function (column) {
        var value = row.cells[column.key];
        var classes = ["value"];
        if (value && value.best) { classes.push("best"); }
        if (value && value.tied) { classes.push("tied"); }
        line.appendChild(cell("td", value ? value.text : "–", classes.join(" ")));
      });
      body.appendChild(line);
      if (showReported.checked) {
        ["reported", "gap"].forEach(function (kind) {
          if (!row[kind]) { return; }
          var extra = document.createElement("tr");
          extra.className = kind;
          extra.appendChild(cell("th", kind));
          board.columns.forEach(function (column) {
            extra.appendChild(cell("td", row[kind][column.key] || "–"));
          });
          body.appendChild(extra);
        });
      }
    });
    table.appendChild(body);
  }

  render();
})();
