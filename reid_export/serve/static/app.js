// The person-search page: upload a query crop (or pick one from the gallery), see the ranked top-k.
// Every call goes through api(), which adds the bearer token when one is set; gallery crops are
// fetched the same way and shown as blob URLs, so a token-protected server works from the page too.
"use strict";

const $ = (id) => document.getElementById(id);
let queryBlob = null;
let galleryOffset = 0;

function headers() {
  const token = $("token").value || sessionStorage.getItem("reid-token") || "";
  if ($("token").value) sessionStorage.setItem("reid-token", $("token").value);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

async function imageUrl(path) {
  const response = await api(path);
  return URL.createObjectURL(await response.blob());
}

function setStatus(text, ok = false) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "";
}

function attributeText(attributes) {
  if (!attributes) return "";
  const colours = Object.entries(attributes).filter(([k, v]) => /^(up|down)[a-z]+$/.test(k) && k !== "up" &&
    k !== "down" && v === "yes").map(([k]) => k.replace(/^up/, "upper ").replace(/^down/, "lower "));
  return [attributes.gender, attributes.age, ...colours].filter(Boolean).join(", ");
}

async function loadInfo() {
  try {
    const info = await (await api("/v1/info")).json();
    const c = info.contract;
    $("model-line").textContent = `${info.model} | runtime ${info.runtime} (${info.provider}) | ${info.precision} | ` +
      `input ${c.height}x${c.width} ${c.color} mean [${c.mean.map((v) => v.toFixed(3))}] ` +
      `std [${c.std.map((v) => v.toFixed(3))}] | gallery ${info.gallery_items} items | store ${info.store}`;
    const select = $("exclude-camera");
    select.length = 1;
    for (const cam of info.cameras) select.add(new Option("camera " + cam, String(cam)));
    $("k").max = info.max_k;
  } catch (error) {
    $("model-line").textContent = "model information unavailable: " + error.message;
  }
}

async function showQuery(blob, caption) {
  queryBlob = blob;
  $("query-image").src = URL.createObjectURL(blob);
  $("query-caption").textContent = caption;
  $("query-view").hidden = false;
}

async function search(event) {
  if (event) event.preventDefault();
  const file = $("query-file").files[0];
  if (file) await showQuery(file, "query: " + file.name);
  if (!queryBlob) { setStatus("choose a query crop first"); return; }
  const form = new FormData();
  form.append("image", queryBlob, (file && file.name) || "query.jpg");
  form.append("k", $("k").value);
  if ($("exclude-camera").value !== "") form.append("exclude_camera", $("exclude-camera").value);
  setStatus("searching\u2026", true);
  const t0 = performance.now();
  try {
    const answer = await (await api("/v1/search", { method: "POST", body: form })).json();
    await renderResults(answer.results);
    setStatus(`${answer.results.length} results in ${(performance.now() - t0).toFixed(0)} ms`, true);
  } catch (error) {
    setStatus("search failed: " + error.message);
  }
}

async function renderResults(results) {
  const strip = $("results");
  strip.replaceChildren();
  for (const hit of results) {
    const tile = document.createElement("div");
    tile.className = "tile result";
    tile.dataset.id = hit.id;
    const img = document.createElement("img");
    img.alt = "rank " + hit.rank;
    tile.append(img);
    const lines = [
      ["rank", "#" + hit.rank],
      ["distance", "distance " + hit.distance.toFixed(4)],
      ["camera", hit.camid === null ? "camera ?" : "camera " + hit.camid],
      ["pid", hit.pid === null ? "" : "pid " + hit.pid],
      ["attrs", attributeText(hit.attributes)],
    ];
    for (const [cls, text] of lines) {
      const div = document.createElement("div");
      div.className = cls;
      div.textContent = text;
      tile.append(div);
    }
    strip.append(tile);
    imageUrl(hit.image_url).then((url) => { img.src = url; }).catch(() => { img.alt = "image unavailable"; });
  }
}

async function loadGallery() {
  try {
    const page = await (await api(`/v1/gallery?offset=${galleryOffset}&limit=24`)).json();
    galleryOffset += page.items.length;
    for (const item of page.items) {
      const tile = document.createElement("div");
      tile.className = "tile pick";
      const img = document.createElement("img");
      img.alt = item.source;
      tile.append(img);
      tile.title = item.source;
      imageUrl(item.image_url).then((url) => { img.src = url; });
      tile.addEventListener("click", async () => {
        const blob = await (await api(item.image_url)).blob();
        $("query-file").value = "";
        await showQuery(blob, "query: gallery item " + item.source);
        await search();
      });
      $("gallery-strip").append(tile);
    }
    $("more-gallery").hidden = galleryOffset >= page.total;
  } catch (error) {
    setStatus("gallery unavailable: " + error.message);
  }
}

$("search-form").addEventListener("submit", search);
$("more-gallery").addEventListener("click", loadGallery);
$("picker").addEventListener("toggle", () => { if ($("picker").open && galleryOffset === 0) loadGallery(); });
$("token").addEventListener("change", () => { loadInfo(); });
$("token").value = sessionStorage.getItem("reid-token") || "";
loadInfo();
