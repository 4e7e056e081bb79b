// Maps without a build step: each <figure class="map" data-map="..."> holds a drawing rendered on
// the server. Once Leaflet (served by the panel, never from a CDN) has loaded its first tile from
// the operator's tile server, the map replaces the drawing; if no tile loads, the drawing stays.
(function () {
  "use strict";
  if (!window.L) { return; }
  var colours = { place: "#0b6e4f", reading: "#3a7fb8", attention: "#b3261e" };
  // Labels come from records (a pickup address, a name): Leaflet reads a string as HTML, so each
  // is handed over as an element holding it as text.
  function asText(label) {
    var span = document.createElement("span");
    span.textContent = label == null ? "" : String(label);
    return span;
  }
  Array.prototype.forEach.call(document.querySelectorAll("figure.map[data-map]"), function (figure) {
    var spec;
    try { spec = JSON.parse(figure.getAttribute("data-map")); } catch (e) { return; }
    if (!spec.tiles) { return; }
    var drawing = figure.querySelector("svg.drawing");
    var holder = document.createElement("div");
    holder.className = "tiles";
    figure.insertBefore(holder, figure.firstChild);
    var map = L.map(holder, { scrollWheelZoom: false });
    var bounds = [];
    (spec.areas || []).forEach(function (a) {
      var c = L.circle([a.lat, a.lon], { radius: a.radius_m, color: colours.place, weight: 1, dashArray: "4", fillOpacity: 0.08 })
        .bindTooltip(asText(a.label)).addTo(map);
      bounds.push(c.getBounds().getNorthEast(), c.getBounds().getSouthWest());
    });
    (spec.points || []).forEach(function (p) {
      var colour = colours[p.kind] || colours.reading;
      if (p.accuracy_m > 0) {
        L.circle([p.lat, p.lon], { radius: p.accuracy_m, color: colour, weight: 0, fillOpacity: 0.12 }).addTo(map);
      }
      var marker = L.circleMarker([p.lat, p.lon], { radius: 7, color: "#fff", weight: 2, fillColor: colour, fillOpacity: 1 })
        .bindTooltip(asText(p.label)).addTo(map);
      if (p.href) { marker.on("click", function () { window.location.href = p.href; }); }
      bounds.push(L.latLng(p.lat, p.lon));
    });
    if (bounds.length === 1) { map.setView(bounds[0], 16); } else { map.fitBounds(bounds, { padding: [24, 24], maxZoom: 17 }); }
    var layer = L.tileLayer(spec.tiles, { attribution: spec.attribution, maxZoom: 19 });
    layer.once("tileload", function () {
      figure.classList.add("tiled");
      if (drawing) { drawing.setAttribute("aria-hidden", "true"); }
    });
    layer.addTo(map);
  });
})();
