// Starts Swagger UI on /docs (a separate file: the page's CSP allows no inline script).
"use strict";
window.addEventListener("load", () => {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
});
