/* cue-front: sets window.datacueConfig from its JSON data island, then loads
   DataCue's scripts in order. Used with DATACUE_CONFIG_MODE = "json" so that a
   Content-Security-Policy without 'unsafe-inline' works. */
(function () {
  "use strict";
  var loader = document.currentScript;
  var island = document.getElementById("datacue-config");
  if (!loader || !island) {
    return;
  }
  window.datacueConfig = JSON.parse(island.textContent);
  var urls = (loader.getAttribute("data-datacue-scripts") || "").split(" ");
  for (var i = 0; i < urls.length; i++) {
    if (!urls[i]) {
      continue;
    }
    var script = document.createElement("script");
    script.src = urls[i];
    script.async = false; /* dynamically inserted scripts then run in insertion order */
    if (loader.nonce) {
      script.nonce = loader.nonce;
    }
    document.head.appendChild(script);
  }
})();
