// Starts ReDoc on /redoc (a file of its own, as for /docs: no inline script is allowed).
"use strict";
(function () {
  const root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapiUrl, { disableSearch: false }, root);
})();
