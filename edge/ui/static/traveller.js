// The traveller screen: follows the lane through /traveller/events (Server-Sent Events).
// It receives only {phase, outcome, message: {key, texts}}: nothing it could leak.
"use strict";
(function () {
  var screen = document.getElementById("screen");
  var text = document.getElementById("message");
  var button = document.getElementById("language");
  var languages = screen.dataset.languages.split(" ");
  var names = { en: "English", es: "Español" };
  var STORE = "borderlane.language";
  var current = null;
  var language = screen.dataset.defaultLanguage;
  try {
    var saved = window.localStorage.getItem(STORE);
    if (languages.indexOf(saved) >= 0) { language = saved; }
  } catch (e) { /* storage unavailable: the default language it is */ }

  function render() {
    if (current) {
      screen.dataset.phase = current.phase;
      screen.dataset.outcome = current.outcome || "";
      text.dataset.key = current.message.key;
      text.textContent = current.message.texts[language] || current.message.texts.en;
    } else {
      // before the first event, the server-rendered text is in the default language
    }
    text.lang = language;
    document.documentElement.lang = language;
    var next = languages[(languages.indexOf(language) + 1) % languages.length];
    button.textContent = names[next] || next;
    button.dataset.next = next;
  }

  button.addEventListener("click", function () {
    language = button.dataset.next;
    try { window.localStorage.setItem(STORE, language); } catch (e) { /* not remembered */ }
    if (!current) { return window.location.reload(); }
    render();
  });

  function connect() {
    var source = new EventSource("/traveller/events");
    source.onopen = function () { screen.dataset.connected = "true"; };
    source.onmessage = function (event) {
      current = JSON.parse(event.data);
      render();
    };
    source.onerror = function () {
      screen.dataset.connected = "false";
      // a network error retries by itself; an HTTP error (agent restarting) closes the stream
      if (source.readyState === EventSource.CLOSED) { window.setTimeout(connect, 2000); }
    };
  }
  render();
  connect();
})();
