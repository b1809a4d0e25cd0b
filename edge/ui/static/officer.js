// The officer's queue: live from /officer/events (Server-Sent Events, behind the login).
// Built with DOM methods and textContent only: no traveller data is ever parsed as HTML.
"use strict";
(function () {
  var list = document.getElementById("queue");
  var empty = document.getElementById("empty");
  var count = document.getElementById("count");

  function span(cls, value) {
    var s = document.createElement("span");
    s.className = cls;
    s.textContent = value;
    return s;
  }

  function render(items) {
    var rows = items.map(function (item) {
      var li = document.createElement("li");
      li.className = "item priority-" + item.priority;
      li.dataset.crossingId = item.crossing_id;
      var a = document.createElement("a");
      a.href = "/officer/review/" + encodeURIComponent(item.crossing_id);
      var doc = item.document;
      a.append(
        span("name", item.name),
        span("doc", doc.kind + " " + doc.number + " (" + doc.issuing_state + ")"),
        span("reasons", item.reasons.join(" · ")),
        span("meta", item.priority + " · " + item.status + " · " + item.created)
      );
      li.append(a);
      return li;
    });
    list.replaceChildren.apply(list, rows);
    count.textContent = String(items.length);
    empty.hidden = items.length > 0;
  }

  var source = new EventSource("/officer/events");
  source.onmessage = function (event) { render(JSON.parse(event.data).queue); };
  source.onerror = function () {
    // logged out, timed out or the agent restarted: the page itself says what to do next
    if (source.readyState === EventSource.CLOSED) {
      window.setTimeout(function () { window.location.reload(); }, 2000);
    }
  };
})();
