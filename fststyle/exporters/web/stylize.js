// The page's whole program: onnxruntime-web runs the exported model on a photo or the webcam, in the
// browser (WebGPU where the browser has it, else WebAssembly). window.FSTSTYLE: {model, styles, wasmPaths,
// checkedRuntime}.
"use strict";

const config = window.FSTSTYLE;
const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };
let session = null;
let backend = "";

// The two files onnxruntime-web's loader would fetch by itself, unchecked: fetched here against their
// pinned hashes (the browser refuses a file that differs) and handed to the runtime as they are.
async function checkedRuntime({ script, module }) {
  const get = async ({ url, integrity }) => {
    const response = await fetch(url, { integrity, mode: "cors", credentials: "omit" });
    if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
    return response.arrayBuffer();
  };
  const [code, binary] = await Promise.all([get(script), get(module)]);
  ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([code], { type: "text/javascript" })) };
  ort.env.wasm.wasmBinary = binary;
}

async function load() {
  if (config.wasmPaths) ort.env.wasm.wasmPaths = new URL(config.wasmPaths, location.href).href;  // a URL, not a module name
  if (config.checkedRuntime) await checkedRuntime(config.checkedRuntime);
  // WebGPU only where the browser gives an adapter (onnxruntime would otherwise fall back silently,
  // and the page would name the wrong backend).
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  for (const executionProviders of adapter ? [["webgpu"], ["wasm"]] : [["wasm"]]) {
    try {
      session = await ort.InferenceSession.create(config.model, { executionProviders });
      backend = executionProviders[0];
      break;
    } catch (err) {
      console.warn(`${executionProviders[0]} unavailable:`, err);
    }
  }
  if (!session) throw new Error("onnxruntime-web could not load the model");
  if (config.styles.length > 1) {
    for (const name of config.styles) $("style").add(new Option(name, name));
    $("style-picker").hidden = false;
  }
  status(`ready (${backend}); pick a photo or use the webcam`);
}

// Pixels of a canvas -> (1, 3, H, W) float32 in [0, 1], the model's input.
function toTensor(canvas) {
  const { width, height } = canvas;
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const planes = new Float32Array(3 * width * height);
  for (let i = 0, n = width * height; i < n; i++) {
    planes[i] = rgba[4 * i] / 255;
    planes[n + i] = rgba[4 * i + 1] / 255;
    planes[2 * n + i] = rgba[4 * i + 2] / 255;
  }
  return new ort.Tensor("float32", planes, [1, 3, height, width]);
}

function draw(tensor, canvas) {
  const [, , height, width] = tensor.dims;
  const data = tensor.data;
  const n = width * height;
  const image = new ImageData(width, height);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) image.data[4 * i + c] = Math.round(Math.min(1, Math.max(0, data[c * n + i])) * 255);
    image.data[4 * i + 3] = 255;
  }
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(image, 0, 0);
}

// onnxruntime-web refuses a second run on a session while one is under way, and every run draws on the
// same canvases: each stylization waits for the one before it.
let queue = Promise.resolve();
function exclusive(task) {
  const result = queue.then(task);
  queue = result.catch(() => {});
  return result;
}

// Stylize `source` at width x height; `keep`: also return the picture as a PNG blob, taken before any
// other stylization can draw over it.
function stylize(source, width, height, keep = false) {
  return exclusive(async () => {
    await ready;  // a photo picked while the model loads waits for it
    const input = $("input");
    input.width = width;
    input.height = height;
    input.getContext("2d").drawImage(source, 0, 0, width, height);
    const feeds = { input: toTensor(input) };
    if (config.styles.length > 1) {
      const weights = new Float32Array(config.styles.length);
      weights[config.styles.indexOf($("style").value)] = 1;
      feeds.style = new ort.Tensor("float32", weights, [1, config.styles.length]);
    }
    const start = performance.now();
    const result = await session.run(feeds);
    const ms = performance.now() - start;
    draw(result.output, $("output"));
    // (a headless browser's virtual time reads 0 ms: no time is shown then)
    $("output-caption").textContent = `stylized: ${width}x${height}${ms > 0 ? ` in ${ms.toFixed(0)} ms` : ""} (${backend})`;
    const png = keep ? await new Promise((resolve) => $("output").toBlob(resolve, "image/png")) : null;
    return { ms, png };
  });
}

function fit(width, height, longSide) {
  const scale = Math.min(1, longSide / Math.max(width, height));
  return [Math.max(16, Math.round(width * scale)), Math.max(16, Math.round(height * scale))];
}

// The download link's picture; the one it held before is released.
function offer(png) {
  const link = $("download");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(png);
  link.hidden = false;
}

async function stylizeImage(image) {
  const [w, h] = fit(image.naturalWidth, image.naturalHeight, Number($("size").value));
  const { ms, png } = await stylize(image, w, h, true);
  offer(png);
  status(`done (${backend}); pick another photo or use the webcam`);
  return { ms, png };
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot read ${url}`));
    image.src = url;
  });
}

// Each webcam start gets a new generation; a loop whose generation is no longer the current one ends,
// so Stop then Start never leaves two loops running.
let generation = 0;

function stopWebcam() {
  generation++;
  const video = $("camera");
  if (video.srcObject) video.srcObject.getTracks().forEach((track) => track.stop());
  video.srcObject = null;
  $("webcam").textContent = "Use the webcam";
}

$("photo").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  stopWebcam();  // the picked photo's result stays on screen
  status(session ? `stylizing ${file.name}…` : `${file.name} waits for the model to load…`);
  const url = URL.createObjectURL(file);
  try {
    await stylizeImage(await loadImage(url));
  } catch (err) {
    status(`error: ${err.message}`);
  } finally {
    URL.revokeObjectURL(url);
  }
});

$("webcam").addEventListener("click", async () => {
  const video = $("camera");
  if (video.srcObject) {
    stopWebcam();
    return;
  }
  const mine = ++generation;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true });
  } catch (err) {
    status(`no webcam: ${err.message}`);
    return;
  }
  if (mine !== generation) {  // stopped, or started again, while the browser asked for the camera
    stream.getTracks().forEach((track) => track.stop());
    return;
  }
  video.srcObject = stream;
  await video.play();
  $("webcam").textContent = "Stop the webcam";
  const [w, h] = fit(video.videoWidth, video.videoHeight, Math.min(384, Number($("size").value)));
  while (mine === generation) {  // one frame at a time: the next starts when the last is drawn
    await stylize(video, w, h);
    await new Promise(requestAnimationFrame);
  }
});

const ready = load();
ready.catch((err) => status(`error: ${err.message}`));
