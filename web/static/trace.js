// The trace page: draws the waterfall from its JSON data block and shows a step on click
// (of a bar, a finding marker, a step in the list or a finding).
// Step panels come from the server already escaped; nothing from a span is put into
// HTML here.
(function () {
  "use strict";

  var chart = document.getElementById("waterfall");
  var dataBlock = document.getElementById("waterfall-data");
  var detail = document.getElementById("step-detail");
  var stepList = document.getElementById("step-list");
  if (!chart || !dataBlock || !detail) {
    return;
  }
  var traceId = chart.getAttribute("data-trace-id");

  function markCurrent(spanId) {
    if (!stepList) {
      return;
    }
    stepList.querySelectorAll("a[data-span-id]").forEach(function (link) {
      if (link.getAttribute("data-span-id") === spanId) {
        link.setAttribute("aria-current", "true");
      } else {
        link.removeAttribute("aria-current");
      }
    });
  }

  function showMessage(text) {
    var message = document.createElement("p");
    message.className = "error";
    message.textContent = text;
    detail.replaceChildren(message);
  }

  function showStep(spanId) {
    if (!/^[0-9a-f]{16}$/.test(spanId)) {
      return;
    }
    var url = "/traces/" + traceId + "/steps/" + spanId;
    fetch(url, { headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var parsed = new DOMParser().parseFromString(html, "text/html");
        detail.replaceChildren.apply(detail, Array.from(parsed.body.childNodes));
        markCurrent(spanId);
        history.replaceState(null, "", "/traces/" + traceId + "?step=" + spanId);
        detail.dataset.spanId = spanId;
      })
      .catch(function (error) {
        showMessage("Could not load the step: " + error.message);
      });
  }

  var figure = JSON.parse(dataBlock.textContent);
  Plotly.newPlot(chart, figure.data, figure.layout, {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"],
  }).then(function () {
    chart.setAttribute("data-drawn", "true");
  });

  chart.on("plotly_click", function (event) {
    if (event && event.points && event.points.length) {
      showStep(String(event.points[0].customdata));
    }
  });

  // The step list and the findings table: a link to a step shows it in place.
  [stepList, document.getElementById("finding-list")].forEach(function (list) {
    if (!list) {
      return;
    }
    list.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-span-id]");
      if (!link) {
        return;
      }
      event.preventDefault();
      showStep(link.getAttribute("data-span-id"));
      if (list !== stepList) {
        detail.scrollIntoView({ block: "nearest" });
      }
    });
  });
})();
