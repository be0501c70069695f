// Draws the plotly figures a page describes: each element with data-chart names a
// <script type="application/json"> block holding {"data": [...], "layout": {...}}.
// Loaded from a file after plotly.min.js: the CSP forbids inline scripts.
(function () {
  if (!window.Plotly) {
    return;
  }
  var config = { displayModeBar: false, responsive: true };
  document.querySelectorAll("[data-chart]").forEach(function (element) {
    var source = document.getElementById(element.dataset.chart);
    if (!source) {
      return;
    }
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(element, figure.data, figure.layout, config);
  });
})();
