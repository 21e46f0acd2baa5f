// uploadd's web interface: sign in, resumable uploads (tus-js-client), the
// library with live transcode progress, slides that follow the presenter and
// the admin console. Plain DOM, no build step; every asset comes from uploadd.
"use strict";

const $ = (selector) => document.querySelector(selector);
const MiB = 1024 * 1024;
let session = loadSession();
let liveEvents = null;
let slideEvents = null;
let adminTimer = null;
const uploads = new Set();

// -- helpers ------------------------------------------------------------------

function loadSession() {
  try {
    const found = JSON.parse(localStorage.getItem("uploadd.session"));
    return found && found.exp * 1000 > Date.now() ? found : null;
  } catch (error) {
    return null;
  }
}

function claims(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part));
}

// The pages each scope opens (as uploadd grants them: uploadd/auth/tokens.py).
const PAGES = {
  admin: ["upload", "library", "admin"],
  write: ["upload", "library"],
  read: ["library"],
  "upload-only": ["upload"],
};

function may(page) {
  return Boolean(session && session.scope.split(" ").some((scope) => (PAGES[scope] || []).includes(page)));
}

function isAdmin() {
  return may("admin");
}

function el(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") made.addEventListener("click", value);
    else if (value !== null && value !== undefined) made.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      made.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return made;
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit && value < 10 ? 1 : 0)} ${units[unit]}`;
}

function duration(seconds) {
  if (!isFinite(seconds)) return "";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
}

function when(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toLocaleString();
}

// A date short enough for one line of the library.
function shortWhen(value) {
  return new Date(value).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function notice(text) {
  $("#notice").textContent = text || "";
}

function withToken(url) {
  return `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(session.token)}`;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}` };
  let data;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    data = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: data });
  if (response.status === 401) {
    signOut("Your session has ended; sign in again.");
    throw new Error("signed out");
  }
  const text = await response.text();
  const document_ = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((document_ && document_.detail) || response.statusText);
  return document_;
}

// -- sign in and routing -----------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  notice("");
  const response = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("#username").value, password: $("#password").value }),
  });
  const answer = await response.json();
  if (!response.ok) {
    notice(answer.detail || "Signing in failed.");
    $("#password").focus();
    return;
  }
  const found = claims(answer.token);
  session = { token: answer.token, name: found.name, sub: found.sub, scope: found.scope, exp: found.exp };
  localStorage.setItem("uploadd.session", JSON.stringify(session));
  $("#password").value = "";
  location.hash = "#/upload";
  route();
}

function signOut(message) {
  localStorage.removeItem("uploadd.session");
  session = null;
  for (const item of uploads) if (item.transfer) item.transfer.abort();
  uploads.clear();
  $("#uploads").replaceChildren();
  closeStreams();
  notice(message || "");
  location.hash = "#/signin";
  route();
}

function closeStreams() {
  if (liveEvents) liveEvents.close();
  if (slideEvents) slideEvents.close();
  liveEvents = slideEvents = null;
  clearInterval(adminTimer);
}

function show(view) {
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `view-${view}`;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route() {
  const signedIn = Boolean(session);
  $("#nav").hidden = !signedIn;
  $("#who").hidden = !signedIn;
  $("#admin-link").hidden = !isAdmin();
  $("#upload-link").hidden = !may("upload");
  $("#library-link").hidden = !may("library");
  const [, view, id, share] = (location.hash || "#/upload").split("/");
  if (view === "slides" && id && share) {
    // A share link: following needs no account.
    clearInterval(adminTimer);
    show("slides");
    openSlides(id, share);
    return;
  }
  if (!signedIn) {
    show("signin");
    $("#username").focus();
    return;
  }
  $("#who-name").textContent = `Signed in as ${session.name}`;
  if (!liveEvents && may("library")) follow();
  if (slideEvents && view !== "slides") {
    slideEvents.close();
    slideEvents = null;
  }
  clearInterval(adminTimer);
  if (view === "slides" && id) {
    show("slides");
    openSlides(id);
  } else if (view === "admin" && isAdmin()) {
    show("admin");
    loadAdmin();
    adminTimer = setInterval(loadAdmin, 3000);
  } else if ((view === "library" || !may("upload")) && may("library")) {
    show("library");
    loadLibrary();
  } else if (may("upload")) {
    show("upload");
    listResumable();
  } else {
    show("nothing");
  }
}

// -- uploads ---------------------------------------------------------------------------

// How the page sends a file (tus): chunks of chunkSize, and from parallelFrom
// bytes on, parallelParts parts side by side that uploadd joins. The whole
// file in one PATCH on one connection is what bench/browser.py measured
// fastest (bench/RESULTS.md): Chromium sends a whole File for half the CPU
// of a slice, and joining parts costs uploadd a second read of the file to
// hash it. uploadd keeps what an interrupted PATCH brought, so nothing is
// lost by sending it whole; a proxy that limits request bodies (a PATCH
// refused 413) gets smaller chunks (resume.js). Where one connection is the
// bottleneck (a long, lossy path), localStorage "uploadd.tus" (JSON) may ask
// for parts; tuning runs use it too.
const TUS_DEFAULTS = { chunkSize: Infinity, parallelParts: 1, parallelFrom: 64 * MiB };

function tusSettings() {
  try {
    return { ...TUS_DEFAULTS, ...JSON.parse(localStorage.getItem("uploadd.tus") || "{}") };
  } catch (error) {
    return TUS_DEFAULTS;
  }
}

function uploadRow(file) {
  const bar = el("progress", { max: "100", value: "0", "aria-label": `Progress of ${file.name}` });
  // The state follows the bar; the announcement, for screen readers, moves
  // in steps of 10%.
  const state = el("span", { class: "state" }, "Starting…");
  const announce = el("span", { class: "visually-hidden", "aria-live": "polite" });
  const detail = el("span", { class: "state" });
  const pause = el("button", { type: "button" }, "Pause");
  const cancel = el("button", { type: "button" }, "Cancel");
  const row = el("li", {}, el("span", { class: "name" }, `${file.name} (${size(file.size)})`),
    bar, state, announce, detail, el("div", { class: "controls" }, pause, cancel));
  return { row, bar, state, announce, detail, pause, cancel };
}

// The largest upload uploadd takes (Tus-Max-Size), asked once.
let maxUpload = null;
async function uploadLimit() {
  if (maxUpload === null) {
    const response = await fetch("/uploads/", { method: "OPTIONS" });
    maxUpload = Number(response.headers.get("Tus-Max-Size")) || Infinity;
  }
  return maxUpload;
}

// The user's unfinished uploads as offers (Resume.offers), from uploadd:
// whichever browser, machine or instance they were started on.
async function unfinishedUploads() {
  const listed = await api("GET", "/uploads/");
  return Resume.offers(listed.results);
}

// Upload URLs this page is sending to now.
function busyUrls() {
  return new Set([...uploads].flatMap((item) => (item.transfer ? item.transfer.urls() : [])));
}

async function addFiles(files) {
  if (!window.tus || !tus.isSupported) {
    notice("This browser cannot upload in chunks; use the form below.");
    return;
  }
  const [limit, offered] = await Promise.all([uploadLimit(), unfinishedUploads()]);
  await Promise.all([...files].map((file) => addFile(file, limit, offered)));
  listResumable();
}

async function addFile(file, limit, offered) {
  const view = uploadRow(file);
  $("#uploads").prepend(view.row);
  const item = { file, view, running: false, last: null, announced: -1, started: performance.now() };
  uploads.add(item);
  view.pause.addEventListener("click", () => toggle(item));
  view.cancel.addEventListener("click", () => cancel(item));
  if (file.size > limit) {
    failed(item, { sentence: `${file.name} is larger than the ${size(limit)} uploadd accepts.`, retry: false });
    return;
  }
  const print = await Resume.fingerprint(file);
  const from = Resume.match(offered, print, file, busyUrls());
  const settings = tusSettings();
  if (from) {
    item.resumedFrom = from.held;
    view.row.dataset.offset = String(from.held);
  }
  item.transfer = new Resume.Transfer(file, {
    endpoint: "/uploads/",
    chunkSize: settings.chunkSize,
    parts: file.size >= settings.parallelFrom ? Math.max(1, settings.parallelParts) : 1,
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream", fingerprint: print },
    authorization: () => `Bearer ${session.token}`,
    from,
  }, {
    onProgress: (sent, total) => progress(item, sent, total),
    onSuccess: () => finished(item),
    onError: (error) => failed(item, explain(error)),
  });
  item.running = true;
  item.transfer.start();
}

function resumedNote(item) {
  return item.resumedFrom === undefined ? "" : ` (resumed at ${size(item.resumedFrom)})`;
}

function progress(item, sent, total) {
  const { view } = item;
  const now = performance.now();
  // Drawn at most five times a second: progress events come far more often,
  // and drawing each costs the CPU the upload itself needs.
  if (item.drawn && now - item.drawn < 200 && sent < total) return;
  item.drawn = now;
  const percent = total ? (100 * sent) / total : 0;
  view.bar.value = percent;
  if (!item.last) item.last = { at: now, sent, rate: 0 };
  const seconds = (now - item.last.at) / 1000;
  if (seconds >= 0.5) {
    const rate = (sent - item.last.sent) / seconds;
    item.last = { at: now, sent, rate: item.last.rate ? 0.7 * item.last.rate + 0.3 * rate : rate };
  }
  const rate = item.last.rate;
  view.detail.textContent = [`${size(sent)} of ${size(total)}`, rate ? `${size(rate)}/s` : "",
    rate ? `${duration((total - sent) / rate)} left` : ""].filter(Boolean).join(" · ");
  view.state.textContent = `Uploading: ${Math.floor(percent)}%${resumedNote(item)}`;
  const step = Math.floor(percent / 10);
  if (step !== item.announced) {
    item.announced = step;
    view.announce.textContent = `${item.file.name}: ${step * 10}% uploaded`;
  }
}

function finished(item) {
  const { view, file } = item;
  item.running = false;
  const seconds = (performance.now() - item.started) / 1000;
  const sent = file.size - (item.resumedFrom || 0);
  view.row.dataset.seconds = seconds.toFixed(3);
  view.bar.value = 100;
  view.state.textContent = `Stored: 100%${resumedNote(item)}`;
  view.announce.textContent = `${file.name} stored`;
  view.detail.textContent = [`${size(file.size)} in ${duration(seconds)}`,
    seconds > 0 && sent > 0 ? `${size(sent / seconds)}/s` : ""].filter(Boolean).join(" · ");
  view.row.classList.add("done");
  view.pause.remove();
  view.cancel.remove();
  listResumable();
}

// What went wrong, in a sentence, and whether trying again can help.
function explain(error) {
  const response = error && error.originalResponse;
  const status = response ? response.getStatus() : 0;
  let detail = "";
  try {
    detail = JSON.parse(response.getBody()).detail || "";
  } catch (ignored) {
    detail = "";
  }
  if (!status) {
    return { sentence: "The connection to uploadd was lost. Retry continues from what uploadd holds.", retry: true };
  }
  if (status === 401) {
    signOut("Your session has ended; sign in again, then choose the file again to continue.");
    return { sentence: "Your session has ended.", retry: false };
  }
  if (status === 403) return { sentence: "Your account may not upload files.", retry: false };
  if (status === 413) return { sentence: `This file is larger than uploadd accepts. ${detail}`.trim(), retry: false };
  if (status === 404 || status === 410) {
    return { sentence: "uploadd no longer has this upload (it expired or was discarded). Retry starts it again from the beginning.", retry: true };
  }
  if (status === 507) return { sentence: "uploadd has no room for this file now. Retry once space is freed.", retry: true };
  if (status === 429 || status >= 500) {
    return { sentence: `uploadd could not take the file just now (${status}). Retry continues from what it holds.`, retry: true };
  }
  return { sentence: `uploadd refused this upload: ${detail || `error ${status}`}`, retry: false };
}

function failed(item, why) {
  item.running = false;
  item.failure = why;
  item.view.row.classList.add("failed");
  item.view.state.textContent = `Failed: ${why.sentence}`;
  item.view.announce.textContent = `${item.file.name} failed: ${why.sentence}`;
  if (why.retry) {
    item.view.pause.textContent = "Retry";
    return;
  }
  // Trying again cannot help: uploadd may forget what it holds of it.
  item.view.pause.remove();
  item.view.cancel.remove();
  uploads.delete(item);
  if (item.transfer) item.transfer.abort(true);
}

function toggle(item) {
  if (item.running) {
    item.transfer.abort();
    item.running = false;
    item.view.state.textContent = "Paused";
    item.view.pause.textContent = "Resume";
  } else {
    item.running = true;
    item.last = null;
    item.view.row.classList.remove("failed");
    item.view.pause.textContent = "Pause";
    item.transfer.start();
  }
}

async function cancel(item) {
  item.running = false;
  if (item.transfer) await item.transfer.abort(true);
  item.view.state.textContent = "Cancelled";
  item.view.pause.remove();
  item.view.cancel.remove();
  uploads.delete(item);
  listResumable();
}

async function listResumable() {
  if (!session || !may("upload")) return;
  const busy = busyUrls();
  const waiting = (await unfinishedUploads()).filter((o) => o.urls.every((url) => !busy.has(url)));
  $("#resumable").hidden = waiting.length === 0;
  $("#resumable-list").replaceChildren(...waiting.map((offer) => el("li", {},
    `${offer.name} (${size(offer.size)}): ${size(offer.held)} on the server, started ${when(offer.created)}`,
    offer.broken ? " (a part expired: it cannot be continued) " : " ",
    el("button", { type: "button", onclick: () => discard(offer) }, `Discard ${offer.name}`))));
}

// uploadd forgets an unfinished upload and the bytes it holds.
async function discard(offer) {
  if (!confirm(`Discard ${offer.name}? uploadd forgets the ${size(offer.held)} it holds.`)) return;
  await Promise.all(offer.urls.map((url) => fetch(url, {
    method: "DELETE",
    headers: { "Tus-Resumable": "1.0.0", Authorization: `Bearer ${session.token}` },
  })));
  listResumable();
}

function setUpDrop() {
  const drop = $("#drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles([...event.dataTransfer.files]);
  });
  $("#choose").addEventListener("click", () => $("#picker").click());
  $("#picker").addEventListener("change", (event) => {
    addFiles([...event.target.files]);
    event.target.value = "";
  });
}

// Browsers without upload progress post a plain form; uploadd reports the
// progress of the upload named by UploadKey.
function setUpFallback() {
  const probe = window.XMLHttpRequest ? new XMLHttpRequest() : null;
  const forced = location.search.includes("fallback");
  if (!forced && probe && "upload" in probe && window.tus && tus.isSupported) return;
  $("#drop").hidden = true;
  const form = $("#fallback");
  form.hidden = false;
  form.addEventListener("submit", () => {
    const key = `${Date.now()}${Math.random().toString(16).slice(2)}`;
    form.action = withToken(`/files?UploadKey=${key}`);
    const poll = setInterval(() => {
      const request = new XMLHttpRequest();
      request.open("GET", withToken(`/progress/${key}`));
      request.onload = () => {
        if (request.status !== 200) return;
        const state = JSON.parse(request.responseText);
        $("#fallback-progress").value = state.percent || 0;
        $("#fallback-status").textContent = `${state.state}: ${state.percent || 0}%`;
        if (state.state !== "uploading") clearInterval(poll);
      };
      request.send();
    }, 500);
  });
}

// -- library -------------------------------------------------------------------------

function follow() {
  liveEvents = new EventSource(withToken("/events"));
  let pending = null;
  const refresh = () => {
    clearTimeout(pending);
    pending = setTimeout(() => { if (!$("#view-library").hidden) loadLibrary(); }, 300);
  };
  liveEvents.addEventListener("transcode.progress", (event) => {
    const data = JSON.parse(event.data);
    const cell = document.querySelector(`[data-rendition="${data.file_id}/${data.profile}"]`);
    if (cell) cell.textContent = `${data.profile}: running ${Math.round(data.percent)}%`;
  });
  for (const topic of ["file.stored", "file.deleted", "file.replicated", "transcode.started",
    "transcode.done", "transcode.failed"]) {
    liveEvents.addEventListener(topic, refresh);
  }
}

function renditionCell(file) {
  const items = file.renditions.map((r) => {
    const label = r.state === "RUNNING" ? `running ${Math.round(r.percent)}%` : r.state.toLowerCase();
    const line = el("span", { "data-rendition": `${file.id}/${r.profile}` }, `${r.profile}: ${label}`);
    if (r.error) line.append(` (${r.error})`);
    if (r.state === "READY" && r.profile !== "pdf-slides") {
      for (const output of r.outputs) {
        line.append(" ", el("a", { href: withToken(output.download_url) }, output.filename));
      }
    }
    if (r.state === "READY" && r.profile === "pdf-slides") {
      line.append(" ", el("a", { href: `#/slides/${file.id}` }, `View ${r.outputs.length} slides`));
    }
    return line;
  });
  const cell = el("td", { "data-label": "Renditions" });
  items.forEach((item, index) => cell.append(...(index ? [" · ", item] : [item])));
  if (!items.length) cell.append("—");
  return titled(cell);
}

// A cell cut to one line keeps its whole text as its title.
function titled(cell) {
  cell.title = cell.textContent;
  return cell;
}

// The page of the library shown: uploadd searches, sorts and pages.
const library = { page: 1, size: 50, q: "", sort: "-created" };
// Sorting by a column first goes A-Z for names, largest and newest first otherwise.
const FIRST_ORDER = { name: "name", size: "-size", created: "-created" };

function sortBy(column) {
  const first = FIRST_ORDER[column];
  const reversed = first.startsWith("-") ? column : `-${column}`;
  library.sort = library.sort === first ? reversed : first;
  library.page = 1;
  loadLibrary();
}

function showSorting() {
  for (const button of document.querySelectorAll("#files th button[data-sort]")) {
    const column = button.dataset.sort;
    const th = button.closest("th");
    if (library.sort.replace("-", "") !== column) {
      th.removeAttribute("aria-sort");
      button.dataset.arrow = "";
    } else {
      const descending = library.sort.startsWith("-");
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      button.dataset.arrow = descending ? "▼" : "▲";
    }
  }
}

async function loadLibrary() {
  const query = new URLSearchParams({ page: library.page, page_size: library.size, sort: library.sort });
  if (library.q) query.set("q", library.q);
  const asked = query.toString();
  library.asked = asked;
  const page = await api("GET", `/files?${asked}`);
  if (library.asked !== asked) return; // a newer question was asked meanwhile
  const pages = Math.max(1, Math.ceil(page.count / library.size));
  if (library.page > pages) {
    library.page = pages;
    loadLibrary();
    return;
  }
  const noun = page.count === 1 ? "file" : "files";
  $("#library-count").textContent = library.q
    ? `${page.count} ${noun} named like “${library.q}”` : `${page.count} ${noun}`;
  showSorting();
  const rows = page.results.map((file) => el("tr", { "data-file": file.id },
    titled(el("td", { "data-label": "Name" }, el("div", { class: "line" },
      el("a", { href: withToken(file.download_url) }, file.filename),
      file.versions.length ? el("span", { class: "state versions" }, "Versions: ", ...file.versions.flatMap((v, i) =>
        [i ? ", " : "", el("a", { href: withToken(`/files/${v.id}/content`) }, `${v.filename} (${shortWhen(v.created_at)})`)])) : null))),
    el("td", { "data-label": "Size" }, size(file.size)),
    el("td", { "data-label": "Stored", title: when(file.created_at) }, shortWhen(file.created_at)),
    titled(el("td", { "data-label": "Copies" }, file.replicas.length ? file.replicas.join(", ") : "on uploadd")),
    renditionCell(file),
    el("td", { "data-label": "Actions" }, el("div", { class: "actions" },
      el("a", { class: "button", href: withToken(file.download_url), download: file.filename,
        "aria-label": `Download ${file.filename}` }, "Download"),
      el("button", { type: "button", "aria-label": `Delete ${file.filename}`, onclick: async () => {
        if (!confirm(`Delete ${file.filename}?`)) return;
        await api("DELETE", `/files/${file.id}`);
        loadLibrary();
      } }, "Delete")))));
  $("#files tbody").replaceChildren(...rows);
  $("#pages").hidden = pages === 1;
  $("#page-status").textContent = `Page ${library.page} of ${pages}`;
  $("#page-previous").disabled = library.page === 1;
  $("#page-next").disabled = library.page === pages;
}

function setUpLibrary() {
  let typing = null;
  $("#search").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      library.q = event.target.value.trim();
      library.page = 1;
      loadLibrary();
    }, 250);
  });
  $("#library-search").addEventListener("submit", (event) => event.preventDefault());
  for (const button of document.querySelectorAll("#files th button[data-sort]")) {
    button.addEventListener("click", () => sortBy(button.dataset.sort));
  }
  const turn = (step) => {
    library.page += step;
    loadLibrary();
  };
  $("#page-previous").addEventListener("click", () => turn(-1));
  $("#page-next").addEventListener("click", () => turn(1));
}

// -- slides ----------------------------------------------------------------------------

// Slides are numbered from 1, as the API numbers them.
let deck = { id: null, slides: [], current: 1, owner: false };

function showSlide(current) {
  deck.current = Math.max(1, Math.min(current, deck.slides.length));
  const image = $("#slide");
  image.src = deck.slides[deck.current - 1] || "";
  image.alt = `Slide ${deck.current} of ${deck.filename}`;
  $("#slide-caption").textContent = deck.slides.length
    ? `Slide ${deck.current} of ${deck.slides.length}` : "No slides yet";
  $("#slide").dataset.current = String(deck.current);
}

// The presenter's state: with the owner's token, or with a share link's.
async function deckState(id, share) {
  if (!share) return api("GET", `/files/${id}/control`);
  const response = await fetch(`/files/${id}/control?share=${encodeURIComponent(share)}`);
  const answer = await response.json();
  if (!response.ok) throw new Error(response.status === 404
    ? "This share link does not work: it was revoked, or the deck is gone." : answer.detail);
  return answer;
}

async function openSlides(id, share) {
  const state = await deckState(id, share);
  const owner = !share && String(state.owner) === String(session.sub);
  deck = { id, slides: state.slides, filename: state.filename, owner };
  $("#slides-title").textContent = `Slides: ${state.filename}`;
  $("#presenter").hidden = !owner;
  $("#sharing").hidden = !owner;
  $("#following").hidden = owner;
  showSlide(state.current);
  if (owner) listShares();
  if (slideEvents) slideEvents.close();
  const listen = `/files/${id}/listen`;
  slideEvents = new EventSource(share ? `${listen}?share=${encodeURIComponent(share)}` : withToken(listen));
  slideEvents.addEventListener("control", (event) => showSlide(JSON.parse(event.data).current));
  slideEvents.addEventListener("revoked", () => {
    slideEvents.close();
    slideEvents = null;
    $("#following").hidden = true;
    notice("The share link was revoked; the deck is no longer followed.");
  });
}

async function move(step) {
  if (!deck.owner) return;
  const current = Math.max(1, Math.min(deck.current + step, deck.slides.length));
  await api("POST", `/files/${deck.id}/control`, { current });
  showSlide(current);
}

async function listShares() {
  const found = await api("GET", `/files/${deck.id}/shares`);
  $("#share-links").replaceChildren(...found.results.map((share, index) => el("li", { "data-share": share.id },
    el("input", { readonly: "", value: share.link, "aria-label": `Share link ${index + 1}` }),
    el("button", { type: "button", onclick: async () => {
      await api("DELETE", `/files/${deck.id}/shares/${share.id}`);
      listShares();
    } }, `Revoke link ${index + 1}`))));
}

async function createShare() {
  await api("POST", `/files/${deck.id}/shares`);
  await listShares();
  const links = document.querySelectorAll("#share-links input");
  if (links.length) links[links.length - 1].select();
}

// -- admin -------------------------------------------------------------------------------

async function loadAdmin() {
  const [nodes, status] = await Promise.all([api("GET", "/admin/nodes"), api("GET", "/admin/status")]);
  const queues = status.queues
    ? Object.entries(status.queues).map(([name, depth]) => `${name} ${depth}`).join(", ")
    : "kept by RabbitMQ";
  $("#pipeline").textContent = `Outbox: ${status.outbox} waiting · bus: ${status.bus} · queues: ${queues} · replicas wanted: ${nodes.replicas}`;
  $("#nodes tbody").replaceChildren(...nodes.results.map((node) => {
    const used = node.total ? node.total - node.free : 0;
    const draining = node.mode === "draining";
    return el("tr", { "data-node": node.id },
      el("th", { scope: "row" }, node.id, el("div", { class: "state" }, `${node.host}:${node.port}`)),
      el("td", { "data-label": "State" }, `${node.health}${node.state ? ` (${node.state})` : ""}${draining ? ", draining" : ""}`),
      el("td", { "data-label": "Space" }, el("meter", { min: "0", max: String(node.total || 1), value: String(used),
        "aria-label": `Space used on ${node.id}` }),
      el("div", { class: "state" }, `${size(node.free)} free of ${size(node.total)}`)),
      el("td", { "data-label": "RTT" }, node.rtt_ms === null ? "—" : `${node.rtt_ms} ms`),
      el("td", { "data-label": "Replicas" }, String(node.replicas ?? 0)),
      el("td", { "data-label": "Last seen" }, node.last_seen ? when(node.last_seen) : "never"),
      el("td", { "data-label": "Actions" }, el("div", { class: "actions" },
        el("button", { type: "button", onclick: () => api("PATCH", `/admin/nodes/${node.id}`,
          { mode: draining ? "active" : "draining" }).then(loadAdmin) }, draining ? `Activate ${node.id}` : `Drain ${node.id}`),
        el("button", { type: "button", onclick: () => confirm(`Remove ${node.id}?`)
          && api("DELETE", `/admin/nodes/${node.id}`).then(loadAdmin) }, `Remove ${node.id}`))));
  }));
  $("#failures").replaceChildren(...(status.recent_failures.length
    ? status.recent_failures.map((f) => el("li", {}, failureLine(f)))
    : [el("li", { class: "state" }, "None.")]));
}

// One failure of background work, saying what failed where.
function failureLine(f) {
  const what = {
    webhook: () => `webhook ${f.webhook_id} to ${f.url || "(its URL is not known)"} (event ${f.event_id})`,
    replication: () => `copy of ${f.file_id} to ${f.node_id}`,
    transcode: () => `${f.profile} of ${f.file_id}`,
  }[f.kind];
  const subject = what ? what() : [f.kind, f.file_id, f.node_id, f.profile].filter(Boolean).join(" ");
  return `${when(f.at)} ${subject}: ${f.reason}`;
}

async function addNode(event) {
  event.preventDefault();
  try {
    await api("POST", "/admin/nodes", { id: $("#node-id").value, host: $("#node-host").value, port: $("#node-port").value });
    $("#node-id").value = "";
    notice("");
    loadAdmin();
  } catch (error) {
    notice(error.message);
  }
}

// -- start ---------------------------------------------------------------------------------

window.addEventListener("unhandledrejection", (event) => {
  if (event.reason && event.reason.message !== "signed out") notice(event.reason.message || String(event.reason));
});
window.addEventListener("hashchange", route);
document.addEventListener("keydown", (event) => {
  if ($("#view-slides").hidden || event.target.tagName === "INPUT") return;
  if (event.key === "ArrowRight") move(1);
  if (event.key === "ArrowLeft") move(-1);
});
$("#signin-form").addEventListener("submit", signIn);
$("#sign-out").addEventListener("click", () => signOut());
$("#previous").addEventListener("click", () => move(-1));
$("#next").addEventListener("click", () => move(1));
$("#share").addEventListener("click", createShare);
$("#add-node").addEventListener("submit", addNode);
setUpDrop();
setUpFallback();
setUpLibrary();
route();
