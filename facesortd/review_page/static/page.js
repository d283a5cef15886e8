// The review page: one key per decision. Plain JavaScript, no libraries, no build step.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
// This tab, as the server knows its decisions: `u` takes back the tab's own (another tab open on the
// page has its own). A reload is the same tab: a new id at each load left `u` nothing to take back
// after F5, though the decisions before it were this tab's. So the id is kept in sessionStorage,
// which a reload keeps and a new tab starts without; but a duplicated tab (or one opened by
// window.open) starts with a copy of it, and two live tabs with one id undid each other's
// decisions. So the tab also holds a Web Lock named by its id while it lives: a load that cannot
// have it (another tab holds it) takes a new id. A reload waits a moment for the lock, which the
// page it replaces gives up as it goes.
const TAB_KEY = "facesortd-tab";
const TAB_LOCK_WAIT_MS = 1000;
const TAB = tabId();

function newTabId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

// Resolves once this page holds the lock of `id` (true; held until the page goes), or false if
// another tab still holds it after `waitMs`.
function holdTab(id, waitMs) {
  return new Promise((held) => {
    const options = waitMs ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
    navigator.locks.request(`facesortd-tab ${id}`, options, (lock) => {
      held(lock !== null);
      return lock ? new Promise(() => {}) : undefined;
    }).catch(() => held(false));
  });
}

async function tabId() {
  const kept = sessionStorage.getItem(TAB_KEY);
  if (kept && await holdTab(kept, TAB_LOCK_WAIT_MS)) return kept;
  const id = newTabId();
  await holdTab(id, 0);  // a new id is nobody's: it is free
  sessionStorage.setItem(TAB_KEY, id);
  return id;
}
const PAGE = 60;
const ARRIVALS_MS = 3000;   // how often an empty quarantine is listed again
// Guesses are calibrated: below an even chance the top guess is more often wrong than right, and a
// label taken from it by habit teaches the model its own mistake. Enter then asks to be pressed again.
const EVEN_CHANCE = 0.5;
const $ = (id) => document.getElementById(id);

let classes = [];            // [{name, key}]
let review = "facesortd review";  // the command that serves the page, as /api/state words it
let reason = "";             // "" = every reason
let page = { items: [], offset: 0, total: 0, counts: {} };
let at = 0;                  // index of the current file on the page
let decided = 0;             // decisions since the page was opened, less those undone
const guesses = new Map();   // id -> {boxes, guesses, width, height, error?}
let queue = Promise.resolve();
let weakAsked = null;        // id of the file whose weak top guess Enter has asked about
let newAsked = null;         // a typed name that is no class yet, asked once whether to make it one
let onScreen = null;         // the current file once its picture has been on screen (see seen())
let showing = 0;             // which show() is the latest: a picture still loading for an earlier one marks nothing

function url(path, params = {}) {
  return path + "?" + new URLSearchParams({ ...params, token: TOKEN });
}

// An Error carrying the reply's status (404 says a file has left the quarantine) and its body.
function failure(res, data) {
  return Object.assign(new Error(data.error || res.statusText), { status: res.status, data });
}

// A request the server does not answer at all: it was stopped (Ctrl-C, a restart). The browser's
// own words, "Failed to fetch", said neither that nor that the key pressed did nothing.
async function send(resource, options) {
  try {
    return await fetch(resource, options);
  } catch {
    throw new Error(`the page's server does not answer: nothing was done. Start \`${review}\` ` +
                    "again and open the URL it prints");
  }
}

async function get(path, params) {
  const res = await send(url(path, params), { headers: { "X-Facesortd-Token": TOKEN } });
  const data = await res.json();
  if (!res.ok) throw failure(res, data);
  return data;
}

async function post(path, body = {}) {
  const res = await send(path, {
    method: "POST",
    headers: { "X-Facesortd-Token": TOKEN, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await res.json();
  if (!res.ok && (res.status !== 409 || data.error)) throw failure(res, data);
  return data;
}

function say(text) { $("message").textContent = text; }

// A key dropped (see decision()) is said on a line of its own, kept until the next key: on the
// message line it replaced what the page had just said of the file now shown ("no face found",
// "unreadable: …"), and any later line (an error of the panels' reload) replaced it in turn, so a
// person could be left looking at a key that did nothing, and not why.
function dropped(text) { $("dropped").textContent = text; }

// Key presses run one after another, in order, however fast they come.
function enqueue(action) {
  queue = queue.then(action).catch((err) => say(err.message));
  return queue;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// A decision goes only to a picture the person has seen: a class key (or Enter, n) pressed before
// the next file's picture appeared (typing ahead, a double tap) labelled the file the page had moved
// on to, unseen, and taught the model a label nobody gave. So a decision is given to the file whose
// picture was on screen when its key was pressed, and to no other: pressed before the picture
// appeared, it is dropped and said, not kept for the next file.
function decision(action) {
  const seenThen = onScreen;
  return () => {
    const item = current();
    if (item && !item.done && item !== seenThen) {
      dropped(`${item.name} was not on screen yet when the key was pressed: nothing given to it; ` +
              "press the key again once you see it");
      return undefined;
    }
    return action();
  };
}

// A key pressed, or its button clicked: `decides` (a class, Enter, n) goes through decision().
function press(action, decides = false) {
  dropped("");
  enqueue(decides ? decision(action) : action);
}

// No button keeps the focus: Enter or Space on a focused button pressed it again, beside what the
// page's own key did ("retrain now" kept it, and Space started another retrain).
function focusless(b, onClick) {
  b.addEventListener("mousedown", (ev) => ev.preventDefault());
  b.addEventListener("click", () => { b.blur(); onClick(); });
  return b;
}

// Every key is a button too, for labelling with the mouse (a class past the tenth has only its
// button).
function keyButton(key, text, action, decides = false) {
  const b = el("button", { type: "button" }, ...(key ? [el("kbd", { textContent: key }), " "] : []), text);
  return focusless(b, () => press(action, decides));
}

async function loadState() {
  const state = await get("/api/state");
  review = state.review;
  classes = state.classes;
  const keys = $("keys");
  keys.replaceChildren(
    ...classes.map((c) => keyButton(c.key, c.name, () => label(c.name), true)),
    keyButton("Enter", "top guess", acceptTop, true),
    keyButton("n", "no usable face", noFace, true),
    keyButton("u", "undo", undo),
    keyButton("←", "previous", () => move(-1)),
    keyButton("→", "next", () => move(1)),
  );
  showLearning(state.learning);
  showModel(state.model);
  return state;
}

function showLearning(l) {
  const counts = Object.entries(l.labels).map(([k, n]) => `${k} ${n}`).join(", ") || "none yet";
  const lines = [
    el("p", { textContent: `labels per class: ${counts}` }),
    el("p", { id: "next-retrain", textContent: l.daemon_running
      ? `next retrain after ${l.next_retrain_in} more label(s)`
      : `next retrain after ${l.next_retrain_in} more label(s), by the daemon, which is not running ` +
        `(\`${l.start_daemon}\` starts it); "retrain now" retrains at once` }),
  ];
  if (l.unusable) lines.push(el("p", { textContent: `${l.unusable} label(s) without a usable face` }));
  if (l.held_back) lines.push(el("p", { id: "held-back", textContent: `the last retrain due could not train: ${l.held_back}` }));
  if (l.last_retrain) {
    lines.push(el("p", { textContent: `last retrain ${l.last_retrain.when}: ${l.last_retrain.decision}` }));
  }
  if (l.message) lines.push(el("p", { id: "retrain-message", textContent: l.message }));
  $("learning-body").replaceChildren(...lines);
  $("retrain").disabled = l.retraining;
  if (l.retraining) setTimeout(() => loadState().catch((e) => say(e.message)), 2000);
}

function showModel(m) {
  const body = [el("p", { textContent: m.model || "no model yet: every face is unsure" })];
  if (m.error) body.push(el("p", { textContent: m.error }));
  if (m.held_out) body.push(el("p", { textContent: `held out: ${m.held_out}` }));
  for (const name of m.plots) body.push(el("img", { src: url("/plot", { name, v: m.model }), alt: name }));
  if (m.model && !m.plots.includes("reliability.png")) {
    body.push(el("p", { textContent: "no reliability curve stored with this model; " +
      `\`${m.draw_plots}\` draws one` }));
  }
  $("model-body").replaceChildren(...body);
}

// `id`: a file to show wherever the listing has it now (the server sends the page holding it);
// if it is not listed, the file at `cursor` of the page at `offset`.
async function loadPage(offset, cursor = 0, id = "") {
  page = await get("/api/items", { reason, offset, limit: PAGE, id });
  page.items.forEach((item) => { item.done = null; });
  const found = page.items.findIndex((item) => item.id === id);
  at = found >= 0 ? found : Math.max(0, Math.min(cursor, page.items.length - 1));
  showReasons();
  showGrid();
  await show();
  prefetch();
}

function showReasons() {
  const total = Object.values(page.counts).reduce((a, b) => a + b, 0);
  const button = (r, label) => {
    const b = el("button", { type: "button", textContent: label, className: r === reason ? "on" : "" });
    return focusless(b, () => { reason = r; enqueue(() => loadPage(0)); });
  };
  $("reasons").replaceChildren(
    button("", `all ${total}`),
    ...Object.entries(page.counts).map(([r, n]) => button(r, `${r} ${n}`)),
  );
}

function current() { return page.items[at]; }

function showGrid() {
  $("grid").replaceChildren(...page.items.map((item, i) => {
    const tile = el("div", { className: "tile" + (i === at ? " at" : "") + (item.done ? " done" : "") +
      (item.dismissed ? " dismissed" : ""), title: item.name });  // the name, on hovering
    tile.dataset.id = item.id;
    tile.append(el("img", { src: url("/thumb", { id: item.id }), alt: item.name, loading: "lazy" }));
    const tag = item.done ? (item.done.kind === "label" ? `→ ${item.done.label}` : "no usable face")
      : item.dismissed ? "no usable face" : item.reason;
    tile.append(el("span", { className: "tag", textContent: tag }));
    tile.addEventListener("click", () => enqueue(() => { at = i; showGrid(); return show(); }));
    return tile;
  }));
  // Labelled files have left the quarantine: counted out at once, not at the next listing.
  const labelled = (items) => items.filter((i) => i.done && i.done.kind === "label").length;
  const here = page.offset + at + 1 - labelled(page.items.slice(0, at));
  const tally = decided ? ` · ${decided} decided so far` : "";
  $("position").textContent = page.items.length
    ? `file ${here} of ${page.total - labelled(page.items)}${tally}`
    : "nothing to review" + tally;
}

// `fresh`: ask even if prefetched (the server has them cached), which also checks the file is still there.
async function ensureGuesses(item, fresh = false) {
  if (fresh || !guesses.has(item.id)) guesses.set(item.id, await get("/api/guesses", { id: item.id }));
  return guesses.get(item.id);
}

async function prefetch() {
  for (const item of page.items.slice(at)) {
    if (!item.done) await ensureGuesses(item).catch(() => null);
  }
}

// An empty listing is looked at again every few seconds: files the daemon quarantines while the
// page is open show up without a reload.
let arrivals = null;
function waitForArrivals() {
  if (arrivals) return;
  arrivals = setTimeout(() => {
    arrivals = null;
    enqueue(() => (current() ? undefined : loadPage(0)));
  }, ARRIVALS_MS);
}

// The file `item` counts as seen once its picture has loaded (or failed to: its name and why are
// said instead) and been painted: the second animation frame from then comes after the first paint.
async function seen(item, shown) {
  const big = $("big");
  if (big.getAttribute("src")) await big.decode().catch(() => undefined);
  await new Promise((painted) => requestAnimationFrame(() => requestAnimationFrame(painted)));
  if (showing !== shown) return;
  onScreen = item;
  $("picture").dataset.shown = item.name;  // for the browser tests, which wait for it as a person looks
}

async function show() {
  const item = current();
  const shown = ++showing;
  onScreen = null;
  delete $("picture").dataset.shown;
  weakAsked = null;  // Enter asks again about a weak guess once the page has shown another file
  newAsked = null;   // and again whether a typed name is to be a new class
  $("boxes").replaceChildren();
  $("guesses").replaceChildren();
  $("picture").hidden = !item;
  if (!item) {
    $("big").removeAttribute("src");
    $("name").textContent = page.total ? ""
      : "The quarantine is empty: files facesortd cannot sort will show here.";
    waitForArrivals();
    return;
  }
  $("big").removeAttribute("src");  // until its guesses name what it shows: not the last file's picture
  $("name").textContent = `${item.name} (${item.reason})` +
    (item.done ? ` → ${item.done.kind === "label" ? item.done.label : "no usable face"}` : "");
  const g = await ensureGuesses(item, true).catch((err) => whenGone(item, err));
  if (current() !== item || !g) return;
  // The picture the guesses were made of, by its content: a key pressed gives its label to that
  // content (shown), not to another picture saved under the name since (another tab shows that one).
  $("big").src = url("/view", { id: item.id, content: g.content });
  g.boxes.forEach((b, i) => {
    const box = el("div", { className: "box" + (i === 0 ? " main" : "") });
    Object.assign(box.style, {
      left: `${(100 * b[0]) / g.width}%`, top: `${(100 * b[1]) / g.height}%`,
      width: `${(100 * b[2]) / g.width}%`, height: `${(100 * b[3]) / g.height}%`,
    });
    $("boxes").append(box);
  });
  const keyOf = (name) => (classes.find((c) => c.name === name) || {}).key;
  $("guesses").replaceChildren(...g.guesses.map(([name, p], i) => el("li", {
    textContent: `${i === 0 ? "Enter" : keyOf(name) || ""}  ${name} ${(100 * p).toFixed(0)} %`,
  })));
  // No content read (its drive could not): the reply says what to do; a crash's leftover claim is
  // said as what it is (a class key would move it, but there is nothing to label); a file that is
  // no image a class key still moves.
  if (g.claim) say(g.error);
  else if (g.error && !g.content) say(`unreadable: ${g.error}`);
  else if (g.error) say(`unreadable: ${g.error}. A class key still moves it, but it teaches the model nothing; n lists it last`);
  else if (!g.boxes.length) say("no face found: press a class key if there is one, n if not");
  seen(item, shown);
}

function move(step) {
  const next = at + step;
  if (next >= page.items.length) return nextPage();
  if (next < 0) {
    return page.offset > 0 ? loadPage(Math.max(0, page.offset - PAGE), PAGE - 1) : undefined;
  }
  at = next;
  showGrid();
  return show();
}

// The files decided on this page have left its place in the listing: the next page starts sooner.
// Past the last page the listing starts again: files skipped on the way (and any that arrived
// since) still wait there, and a bare "end of the list" left them unseen.
async function nextPage() {
  const left = page.items.filter((i) => i.done).length;
  const offset = page.offset + page.items.length - left;
  if (offset < page.total - left) return loadPage(offset);
  await loadPage(0);
  const first = current();
  const others = Object.entries(page.counts).filter(([r, n]) => r !== reason && n).map(([r]) => r);
  const all = reason ? `all of ${reason} reviewed` + (others.length ? ` (${others.join(", ")} still wait)` : "")
    : "all reviewed";
  if (!first) say(`${all}: ${reason || "the quarantine"} is empty`);
  else if (first.dismissed) say(`${all}: what is left is marked "no usable face" and stays in quarantine`);
  else say("end of the list: back to its start, where the files you skipped wait");
  return undefined;
}

function advance() {
  const next = page.items.findIndex((item, i) => i > at && !item.done);
  if (next >= 0) {
    at = next;
    showGrid();
    return show();
  }
  showGrid();
  return nextPage();
}

// A file moved, renamed, changed or deleted outside the page since it was listed, or labelled in
// another tab (`decided` in the reply: the tab whose decision came second was told "reload" and
// stayed on it): the page lists the quarantine again and goes on with the file that came after it,
// and says so, instead of a key that does nothing. The file after it by id, not by place: a file
// renamed in the quarantine is listed first (newest) and put the person back on a file they had passed.
async function whenGone(item, err) {
  const elsewhere = err.data && err.data.decided;
  if (err.status !== 404 && !elsewhere) throw err;
  if (current() !== item) return undefined;
  const cursor = page.items.slice(0, at).filter((i) => !i.done).length;
  const next = page.items.slice(at + 1).find((i) => !i.done);
  await loadPage(page.offset, cursor, next ? next.id : "");
  say(elsewhere ? `${item.name} was labelled ${elsewhere.label} in another tab meanwhile: skipped here`
    : `${item.name} is no longer in the quarantine under that name (moved, renamed, changed or deleted ` +
      "elsewhere): skipped");
  return undefined;
}

// The content the large picture of this file shows: show() asked for it by its guesses' content.
function shownContent(item) { return (guesses.get(item.id) || {}).content; }

// `typed`: the name was typed (t), where a name that is no class yet is made a new one if Enter
// gives it again; a key's class that is no class any more (its folder removed) lists the keys anew.
async function label(name, typed = false) {
  const item = current();
  if (!item || item.done) return advance();
  const asNew = typed && newAsked === name;
  newAsked = null;
  const body = { id: item.id, label: name, content: shownContent(item), new: asNew, tab: await TAB };
  const done = await post("/api/label", body)
    .catch((err) => (err.data && err.data.unknown_class ? notAClass(err.data, name, typed) : whenGone(item, err)));
  if (!done) return undefined;
  item.done = done;
  decided += 1;
  page.counts[item.reason] -= 1;
  showReasons();
  say(`${done.name} → ${done.label}`);
  if (!classes.some((c) => c.name === done.label)) await loadState();
  else loadState().catch((e) => say(e.message));
  return advance();
}

async function notAClass(reply, name, typed) {
  if (!typed) {
    say(`${reply.why}; the keys are listed anew`);
    return loadState().then(() => undefined);
  }
  newAsked = name;
  $("class-input").value = name;
  $("class-input").focus();
  say(`${reply.why}. Enter again makes ${reply.unknown_class} a new class; Esc does not`);
  return undefined;
}

async function acceptTop() {
  const item = current();
  if (!item || item.done) return advance();
  const g = await ensureGuesses(item).catch((err) => whenGone(item, err));
  if (!g) return undefined;
  if (!g.guesses.length) {
    say("no guess for this file: press a class key, or n");
    return undefined;
  }
  const [name, p] = g.guesses[0];
  if (p < EVEN_CHANCE && weakAsked !== item.id) {
    weakAsked = item.id;
    say(`the model is only ${(100 * p).toFixed(0)} % sure of ${name}: press the key of the emotion ` +
        `you see, or Enter again to give ${name}`);
    return undefined;
  }
  weakAsked = null;
  return label(name);
}

async function noFace() {
  const item = current();
  if (!item || item.done) return advance();
  if (item.dismissed) {
    say(`${item.name} is already marked "no usable face"`);
    return advance();
  }
  const done = await post("/api/no-face", { id: item.id, content: shownContent(item), tab: await TAB })
    .catch((err) => whenGone(item, err));
  if (!done) return undefined;
  item.done = done;
  decided += 1;
  say(`${item.name}: no usable face (stays in quarantine)`);
  return advance();
}

async function undo() {
  const done = await post("/api/undo", { tab: await TAB });
  const i = page.items.findIndex((item) => item.id === done.id);
  decided = Math.max(0, decided - 1);
  // A class the label had made goes with it when its folder is left empty: its key goes too.
  const as = done.path.split("/").pop();  // another name where another file had taken its own
  say(`undone: ${done.name} is back in quarantine${as === done.name ? "" : ` as ${as}`}` +
      (done.unmade ? `; ${done.unmade}` : ""));
  loadState().catch((e) => say(e.message));
  // Not on this page (decided before a reload, or on another page): the page that holds it now.
  if (i < 0) return loadPage(page.offset, at, done.id);
  if (done.kind === "label") page.counts[page.items[i].reason] += 1;
  showReasons();
  page.items[i].done = null;
  page.items[i].dismissed = false;
  at = i;
  showGrid();
  return show();
}

function onKey(ev) {
  if (ev.target === $("class-input") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  dropped("");  // the next key: what it does is said instead
  const cls = classes.find((c) => c.key && c.key === ev.key);
  const moves = { ArrowRight: () => move(1), ArrowDown: () => move(1), ArrowLeft: () => move(-1), ArrowUp: () => move(-1) };
  const decisions = { Enter: acceptTop, n: noFace };
  const actions = { ...decisions, u: undo, ...moves };
  // A key held down repeats: a class key held a moment too long gave its label to every file after,
  // unseen. A decision is one press; only the arrows repeat.
  if (ev.repeat && !moves[ev.key]) {
    ev.preventDefault();
    if (cls || actions[ev.key]) say("a key held down decides once: press it again for the next file");
    return;
  }
  if (ev.key === "t") {
    ev.preventDefault();
    $("class-input").focus();
  } else if (cls) {
    press(() => label(cls.name), true);
  } else if (actions[ev.key]) {
    ev.preventDefault();
    press(actions[ev.key], ev.key in decisions);
  } else if (ev.key.length === 1 && ev.key !== " ") {
    // A key that does nothing says so, rather than leaving the user to wonder whether it was heard.
    say(/[0-9]/.test(ev.key) ? `no class has the key ${ev.key}: t types a class`
      : `${ev.key} does nothing here: the keys are listed beside the picture`);
  }
}

function start() {
  document.addEventListener("keydown", onKey);
  $("big").addEventListener("load", (ev) => {
    $("picture").style.setProperty("--aspect", ev.target.naturalWidth / ev.target.naturalHeight);
  });
  $("new-class").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("class-input").value;
    $("class-input").value = "";
    $("class-input").blur();
    if (name.trim()) press(() => label(name, true), true);
  });
  $("class-input").addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    newAsked = null;
    ev.target.value = "";
    ev.target.blur();
  });
  focusless($("retrain"), () => enqueue(async () => {
    await post("/api/retrain");
    await loadState();
  }));
  enqueue(async () => { await loadState(); await loadPage(0); document.body.dataset.ready = "1"; });
}

start();
