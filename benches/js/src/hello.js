// The JavaScript hello the benches serve: a fetch-event handler, as a
// Workers, Fastly or Spin user writes one.
addEventListener("fetch", (event) =>
  event.respondWith(
    new Response("hello from verge\n", {
      headers: { "content-type": "text/plain" },
    }),
  ),
);
