// Renders the document next to this page ("openapi.json" resolves to /openapi.json from
// /docs and to /v1/openapi.json from /v1/docs). "Authorize" takes a bearer token or an API
// key; "Try it out" then calls this server with it.
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: new URL(root.getAttribute("data-spec-url"), document.baseURI).href,
    domNode: root,
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    validatorUrl: null,
  });
})();
