/* cue-front: sends storefront events to the shop's own first-party endpoint.
 *
 *   cueFront.track({type: "wishlist", subtype: "add", product_id: "p1"});
 *   cueFront.track({type: "click", subtype: "banner", banner_id: "b1"}, {defer: true});
 *
 * The server fills in who the visitor is, their context and the time: the
 * browser only says what happened. Deferred events wait in sessionStorage and
 * are sent on the next page load, as DataCue's own track(event, true) does, so a
 * click that navigates away is never lost. Clicks on elements carrying
 * data-dc-product-id or data-dc-banner-id are tracked (deferred) automatically.
 * No dependencies; include it with {{ datacue_events_script() }}.
 */
(function (window, document) {
  "use strict";
  var script = document.currentScript;
  var endpoint = (script && script.getAttribute("data-endpoint")) || "/datacue/events";
  var STORE = "cueFront.deferred";

  function post(event) {
    var body = JSON.stringify({event: event});
    if (document.visibilityState === "hidden" && navigator.sendBeacon) {
      var blob = new Blob([body], {type: "application/json"});
      if (navigator.sendBeacon(endpoint, blob)) {
        return Promise.resolve(null);
      }
    }
    return fetch(endpoint, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: {"Content-Type": "application/json"},
      body: body
    }).then(function (response) {
      if (response.status === 200) {
        return response.json();
      }
      return null;
    });
  }

  function readDeferred() {
    try {
      return JSON.parse(window.sessionStorage.getItem(STORE) || "[]");
    } catch (error) {
      return [];
    }
  }

  function defer(event) {
    var waiting = readDeferred();
    waiting.push(event);
    try {
      window.sessionStorage.setItem(STORE, JSON.stringify(waiting.slice(-50)));
    } catch (error) {
      post(event); /* storage full or disabled: send now rather than lose it */
    }
  }

  function sendDeferred() {
    var waiting = readDeferred();
    try {
      window.sessionStorage.removeItem(STORE);
    } catch (error) { /* nothing was stored */ }
    for (var i = 0; i < waiting.length; i++) {
      post(waiting[i]);
    }
  }

  function track(event, options) {
    if (options && options.defer) {
      defer(event);
      return Promise.resolve(null);
    }
    return post(event);
  }

  function widgetKind(element) {
    var widget = element.closest("[data-dc-products]");
    var kind = widget && widget.getAttribute("data-dc-products");
    return kind === "similar" || kind === "recent" ? kind : "related";
  }

  document.addEventListener("click", function (click) {
    var target = click.target instanceof Element ? click.target : null;
    if (!target) {
      return;
    }
    var banner = target.closest("[data-dc-banner-id]");
    if (banner) {
      track({type: "click", subtype: "banner", banner_id: banner.getAttribute("data-dc-banner-id")},
            {defer: true});
      return;
    }
    var product = target.closest("[data-dc-product-id]");
    if (product) {
      track({type: "click", subtype: product.getAttribute("data-dc-kind") || widgetKind(product),
             product_id: product.getAttribute("data-dc-product-id")}, {defer: true});
    }
  }, true);

  window.cueFront = {track: track, flush: sendDeferred};
  sendDeferred();
})(window, document);
