// Automation for tests and benchmarks, only in pages built with write_page(automation=True), never in a
// published export: ?photo=URL stylizes that picture at its size (&repeat=N times, the fastest time
// kept); &report=URL posts the PNG (or the error) there. Both addresses must be of the page's own origin.
"use strict";

const params = new URLSearchParams(location.search);

function sameOrigin(name) {
  const url = new URL(params.get(name), location.href);
  if (url.origin !== location.origin) throw new Error(`${name}= must be an address of this page's origin`);
  return url.href;
}

async function report(body, headers = {}) {
  if (params.has("report")) await fetch(sameOrigin("report"), { method: "POST", body, headers });
}

async function automate() {
  if (!params.has("photo")) return;
  $("size").value = 4096;
  const photo = await loadImage(sameOrigin("photo"));
  let best = { ms: Infinity, png: null };
  for (let i = 0; i < Number(params.get("repeat") || 1); i++) {
    const run = await stylizeImage(photo);
    if (run.ms <= best.ms) best = run;
  }
  await report(best.png, { "X-Backend": backend, "X-Milliseconds": best.ms.toFixed(1) });
}

// Not after `ready`: the photo is picked while the model may still load, as a user may pick one, and
// the page must queue it (stylize waits for the model).
automate().catch(async (err) => {
  status(`error: ${err.message}`);
  await report(`error: ${err.message}`);
});
