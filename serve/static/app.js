// The fashionrec page: pick an item or a user, or send a photo, see the recommendations and
// the terms of their relevance, record a purchase. It only calls the service's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const DEFAULTS = { k: 8, "w-visual": 0.6, "w-popularity": 0.2, "w-category": 0.2,
  "w-distance": 0, gamma: 2, trendiness: 0.5, "max-km": "" };
const TERMS = ["visual", "popularity", "category", "distance"];
const TERM_NAMES = { visual: "visual", popularity: "trend match", category: "category", distance: "distance" };
const NARROW = window.matchMedia("(max-width: 800px)");
const state = { mode: "item", shown: null, shops: {}, blobs: [], ticket: 0, t: null };

// --- the API -----------------------------------------------------------------------------

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const headers = { ...authHeaders(), ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : `${response.status} ${response.statusText}`);
  }
  return body;
}

const enc = encodeURIComponent;

function showImage(img, itemId) {
  const url = `/items/${enc(itemId)}/image`;
  img.alt = itemId;
  img.addEventListener("error", () => img.classList.add("missing"), { once: true });
  if (!$("api-key").value.trim()) {
    img.src = url;
    return;
  }
  // With a key the photo is fetched with it (an <img> cannot send a header).
  fetch(url, { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
    .then((blob) => {
      const local = URL.createObjectURL(blob);
      state.blobs.push(local);
      img.src = local;
    })
    .catch(() => img.classList.add("missing"));
}

function forgetBlobs() {
  state.blobs.forEach((url) => URL.revokeObjectURL(url));
  state.blobs = [];
}

// --- small helpers -----------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmt(value, digits = 2) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function km(value) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(1)}\u00a0km`;
}

function money(value) {
  return value === null || value === undefined ? null : Number(value).toFixed(2);
}

// Sales as a person reads them: a count (all-time), or the decayed count as of now
// (trending: each sale counts 2^(−age / half-life)), to 2 decimals.
function sales(value, trending) {
  if (value === null || value === undefined) return "—";
  const number = Number(value);
  if (!trending) return number.toFixed(0);
  return number > 0 && number < 0.01 ? "<0.01" : number.toFixed(2);
}

const SALES_EXPLAINED = {
  "all-time": "all-time popularity: the item's sales (with its initial popularity)",
  trending: "trending popularity: the item's sales as of now, each counting 2^(−age / half-life)",
};

function isTrending(doc) {
  return String(doc.popularity || "").startsWith("trending");
}

function shopName(id) {
  if (!id) return "—";
  return state.shops[id] ? state.shops[id].name : id;
}

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

function fact(list, name, value, className, title) {
  const dt = el("dt", "", name);
  if (title) dt.title = title;
  list.append(dt);
  const dd = el("dd", className || "", value);
  list.append(dd);
  return dd;
}

// The shop's name for an item, a link to its page where it has one (else the item id).
function itemName(className, name, url, itemId) {
  const linked = url && /^https?:\/\//.test(url);
  const node = el(linked ? "a" : "div", linked ? `${className} shop-link` : className, name || itemId);
  node.title = itemId;
  if (linked) {
    node.href = url;  // the shop's product page, in a tab of its own
    node.target = "_blank";
    node.rel = "noopener noreferrer";
  }
  return node;
}

// On a narrow screen the results sit below the controls: bring them into view.
function reveal() {
  if (!NARROW.matches) return;
  const status = $("status");
  if (status.getBoundingClientRect().top > window.innerHeight * 0.6) {
    status.scrollIntoView({ block: "start" });
  }
}

// --- controls ----------------------------------------------------------------------------

function syncOutputs() {
  document.querySelectorAll("output[for]").forEach((out) => {
    out.textContent = Number($(out.htmlFor).value).toFixed(2);
  });
}

function rankingQuery() {
  const q = new URLSearchParams();
  q.set("k", $("k").value || "8");
  if ($("space").value) q.set("space", $("space").value);
  q.set("w_visual", $("w-visual").value);
  q.set("w_popularity", $("w-popularity").value);
  q.set("w_category", $("w-category").value);
  q.set("w_distance", $("w-distance").value);
  q.set("gamma", $("gamma").value);
  if ($("popularity-mode").value) q.set("popularity", $("popularity-mode").value);
  if ($("max-km").value) q.set("max_km", $("max-km").value);
  if ($("rec-category").value.trim()) q.set("category", $("rec-category").value.trim());
  if ($("min-price").value) q.set("min_price", $("min-price").value);
  if ($("max-price").value) q.set("max_price", $("max-price").value);
  if ($("any-stock").checked) q.set("in_stock", "false");
  return q;
}

function setMode(mode) {
  state.mode = mode;
  for (const name of ["item", "user", "photo"]) {
    $(`tab-${name}`).classList.toggle("active", mode === name);
    $(`tab-${name}`).setAttribute("aria-selected", String(mode === name));
    $(`${name}-form`).hidden = mode !== name;
  }
  // a user's own trendiness ranks their recommendations; an item or a photo takes t
  document.querySelectorAll(".query-t").forEach((n) => { n.hidden = mode === "user"; });
}

// --- the catalog, the item list and the user list -----------------------------------------

async function loadCatalog() {
  const catalog = await api("/catalog");
  state.shops = Object.fromEntries(catalog.shops.map((s) => [s.id, s]));
  const spaces = Object.keys(catalog.spaces);
  const select = $("space");
  select.replaceChildren(...spaces.map((name) => {
    const info = catalog.spaces[name];
    const weights = Object.keys(info.weights).join(", ") || "unknown weights";
    const option = el("option", "", `${name} (${weights})`);
    option.value = name;
    return option;
  }));
  const preferred = catalog.default_space || "resnet50";
  if (spaces.includes(preferred)) select.value = preferred;
  const choices = [
    ["gender-filter", catalog.genders], ["category-filter", catalog.categories],
    ["photo-gender", catalog.genders],
  ];
  for (const [id, values] of choices) {
    const target = $(id);
    const chosen = target.value;
    target.replaceChildren(target.options[0]);
    Object.keys(values).sort().forEach((value) => {
      const option = el("option", "", `${value} (${values[value]})`);
      option.value = value;
      target.append(option);
    });
    target.value = chosen in values ? chosen : "";
  }
  $("summary").textContent = `${catalog.items} items · ${spaces.length} vector space(s) · ` +
    `${catalog.shops.length} shops · ${catalog.users} users · ${catalog.purchases} purchases · ` +
    `taxonomy ${catalog.taxonomy}`;
}

async function loadItems() {
  const q = new URLSearchParams({ limit: "60" });
  if ($("gender-filter").value) q.set("gender", $("gender-filter").value);
  if ($("category-filter").value) q.set("category", $("category-filter").value);
  const data = await api(`/items?${q}`);
  const list = $("item-list");
  list.replaceChildren(...data.items.map((item) => {
    const li = el("li");
    const button = el("button", "pick");
    button.type = "button";
    button.append(el("span", "pick-main", item.item_id), el("span", "pick-side", item.category));
    button.addEventListener("click", () => { $("item-id").value = item.item_id; showItem(item.item_id); });
    li.append(button);
    return li;
  }));
  $("item-options").replaceChildren(...data.items.map((item) => {
    const option = el("option");
    option.value = item.item_id;
    return option;
  }));
  $("item-count").textContent = `${data.items.length} of ${data.count} shown`;
}

async function loadUsers() {
  const data = await api("/users?limit=200");
  $("user-list").replaceChildren(...data.users.map((id) => {
    const li = el("li");
    const button = el("button", "pick", id);
    button.type = "button";
    button.addEventListener("click", () => { $("user-id").value = id; showUser(id); });
    li.append(button);
    return li;
  }));
  $("user-options").replaceChildren(...data.users.map((id) => {
    const option = el("option");
    option.value = id;
    return option;
  }));
  $("user-count").textContent = data.count ? `${data.users.length} of ${data.count} users` :
    "no users yet: run `fashionrec simulate` or import purchases";
}

// --- rendering ----------------------------------------------------------------------------

function termBar(rec, weights) {
  const parts = {
    visual: weights.visual * (rec.visual ?? 0),
    popularity: weights.popularity * rec.popularity_term,
    category: weights.category * rec.category_sim,
  };
  parts.distance = Math.max(0, rec.relevance - parts.visual - parts.popularity - parts.category);
  const wrap = el("div", "relevance");
  const head = el("div", "relevance-head");
  head.append(el("span", "", "relevance"), el("strong", "score", fmt(rec.relevance, 3)));
  const bar = el("div", "bar");
  const total = Math.max(1, weights.visual + weights.popularity + weights.category + weights.distance);
  TERMS.forEach((term) => {
    const seg = el("span", `seg ${term}`);
    seg.style.width = `${Math.max(0, (parts[term] / total) * 100)}%`;
    seg.title = `${TERM_NAMES[term]} ${fmt(parts[term], 3)}`;
    bar.append(seg);
  });
  const terms = el("div", "terms");
  const raw = {
    visual: fmt(rec.visual, 3),
    popularity: fmt(rec.popularity_term, 3),
    category: fmt(rec.category_sim, 2),
    distance: rec.distance_km === null || rec.distance_km === undefined ? "—" : km(rec.distance_km),
  };
  const t = state.t === null ? "t" : `t ${fmt(state.t)}`;
  const explain = {
    visual: "cosine similarity to the query",
    popularity: `1 − |NormPop − t|^γ with NormPop ${fmt(rec.norm_popularity)} (the item's ` +
      `popularity rank, 0–1), ${t}, γ ${fmt(weights.gamma)}: how well its popularity ` +
      "matches the trendiness",
    category: "CatSim of the two categories",
    distance: "exp(−km / scale)",
  };
  TERMS.forEach((term) => {
    const row = el("div", `term ${term}`);
    row.title = `${TERM_NAMES[term]}: ${explain[term]}; weighted contribution ${fmt(parts[term], 3)}`;
    row.append(el("span", `key ${term}`, TERM_NAMES[term]), el("span", "raw", raw[term]),
      el("span", "value", fmt(parts[term], 3)));
    terms.append(row);
  });
  wrap.append(head, bar, terms);
  return wrap;
}

function card(rec, weights, trending) {
  const article = el("article", "card");
  article.dataset.item = rec.item_id;
  const figure = el("div", "photo");
  const img = el("img");
  img.loading = "lazy";
  img.decoding = "async";
  showImage(img, rec.item_id);
  figure.append(img, el("span", "rank", `#${rec.rank}`));
  const body = el("div", "card-body");
  const title = el("div", "card-title");
  const category = el("span", "cat-name", rec.category);
  category.title = rec.category;
  title.append(category, el("span", "gender", rec.gender));
  const id = itemName("item-id", rec.name, rec.url, rec.item_id);
  const facts = el("dl", "facts");
  if (money(rec.price) !== null) fact(facts, "price", money(rec.price), "price");
  if (rec.in_stock === false) fact(facts, "stock", "out of stock", "out");
  fact(facts, "shop", shopName(rec.store_id));
  fact(facts, "distance", km(rec.distance_km));
  fact(facts, trending ? "recent sales" : "sales", sales(rec.popularity, trending), "popularity",
    SALES_EXPLAINED[trending ? "trending" : "all-time"]);
  const actions = el("div", "actions");
  const more = el("button", "quiet", "Similar");
  more.type = "button";
  more.addEventListener("click", () => { setMode("item"); $("item-id").value = rec.item_id; showItem(rec.item_id); });
  const buy = el("button", "buy", "Record purchase");
  buy.type = "button";
  buy.addEventListener("click", () => recordPurchase(rec.item_id));
  actions.append(more, buy);
  body.append(title, id, facts, termBar(rec, weights), actions);
  article.append(figure, body);
  return article;
}

function grid(title, recs, doc) {
  const section = el("section", "list");
  section.append(el("h3", "", title));
  if (!recs.length) {
    section.append(el("p", "hint", "nothing matches: widen the filters"));
    return section;
  }
  const cards = el("div", "grid");
  const trending = isTrending(doc);
  recs.forEach((rec) => cards.append(card(rec, doc.weights, trending)));
  section.append(cards);
  return section;
}

function showProvenance(doc) {
  const weights = Object.entries(doc.vectors.weights)
    .map(([label, count]) => `${label} ${count}`).join(", ") || "unknown";
  const popularity = doc.popularity ? ` · popularity ${doc.popularity}` : "";
  $("provenance").textContent =
    `· ${doc.vectors.space} vectors: ${weights} · taxonomy ${doc.vectors.taxonomy}${popularity}`;
  $("legend").hidden = false;
}

function clearResults() {
  forgetBlobs();
  $("query").replaceChildren();
  $("query").hidden = true;
  $("legend").hidden = true;
  $("results").replaceChildren();
}

function renderItem(item, doc) {
  const query = $("query");
  const p = item.payload;
  query.replaceChildren();
  const photo = el("div", "photo big");
  const img = el("img");
  img.id = "query-photo";
  showImage(img, item.item_id);
  photo.append(img);
  const info = el("div", "query-info");
  info.append(el("h2", "", p.category || "item"));
  const name = itemName("item-name", p.name, p.url, item.item_id);
  name.id = "query-name";
  const id = el("div", "item-id", item.item_id);
  const facts = el("dl", "facts wide");
  if (money(p.price) !== null) fact(facts, "price", money(p.price), "price");
  if (p.in_stock === false) fact(facts, "stock", "out of stock", "out");
  fact(facts, "gender", p.gender);
  fact(facts, "product", p.product_id);
  fact(facts, "shop", item.shop ? (item.shop.name || item.shop.id) : "—");
  fact(facts, "sales", sales(item.popularity, false), "popularity", SALES_EXPLAINED["all-time"])
    .id = "query-popularity";
  if (isTrending(doc)) {
    fact(facts, "recent sales", sales(item.trending, true), "trending", SALES_EXPLAINED.trending)
      .id = "query-trending";
  }
  const buy = el("button", "buy", "Record purchase");
  buy.type = "button";
  buy.id = "query-buy";
  buy.addEventListener("click", () => recordPurchase(item.item_id));
  info.append(...(p.name || p.url ? [name, id] : [id]), facts, buy);
  query.append(photo, info);
  query.hidden = false;
  showProvenance(doc);
  $("results").replaceChildren(...doc.lists.map((l) => grid(`Like this (${l.recommendations.length})`, l.recommendations, doc)));
}

function boughtTile(p) {
  const tile = el("figure", "tile");
  tile.dataset.item = p.item_id;
  tile.title = `${p.item_id} · ${p.timestamp}`;
  const caption = el("figcaption");
  const where = el("span", "hint", `${p.shop_name || p.store_id || "—"} · ${km(p.distance_km)}`);
  const when = el("span", "hint", String(p.timestamp).slice(0, 10));
  if (p.in_catalog === false) {
    // the item was deleted from the catalog: its purchase stays, its photo is gone
    tile.classList.add("gone");
    tile.append(el("div", "gone-box", "no longer in the catalog"));
    caption.append(el("span", "item-id", p.item_id), when, where);
    tile.append(caption);
    return tile;
  }
  const img = el("img");
  showImage(img, p.item_id);
  const name = el("span", "tile-name", p.name || p.category || p.item_id);
  name.title = p.name || p.category || p.item_id;
  caption.append(name);
  if (money(p.price) !== null) caption.append(el("span", "price", money(p.price)));
  caption.append(when, where);
  tile.append(img, caption);
  return tile;
}

function renderUser(user, doc) {
  const query = $("query");
  query.replaceChildren();
  const info = el("div", "query-info");
  info.append(el("h2", "", user.id));
  const facts = el("dl", "facts wide");
  fact(facts, "gender", user.gender);
  fact(facts, "trendiness", fmt(user.trendiness));
  fact(facts, "lives at", `${fmt(user.residence.lat, 4)}, ${fmt(user.residence.lon, 4)}`);
  fact(facts, "purchases", user.purchases.length);
  info.append(facts);
  const bought = el("div", "bought");
  user.purchases.forEach((p) => bought.append(boughtTile(p)));
  query.append(info, bought);
  query.hidden = false;
  showProvenance(doc);
  const merged = doc.lists.filter((l) => l.list === "merged");
  const each = doc.lists.filter((l) => l.list !== "merged");
  const sections = merged.map((l) => grid("For this user (merged)", l.recommendations, doc));
  each.forEach((l) => {
    const details = el("details", "per-purchase");
    details.append(el("summary", "", l.list));
    details.append(grid(l.list, l.recommendations, doc));
    sections.push(details);
  });
  $("results").replaceChildren(...sections);
}

function renderPhoto(file, doc) {
  const query = $("query");
  query.replaceChildren();
  const photo = el("div", "photo big");
  const img = el("img");
  img.id = "query-photo";
  img.alt = file.name;
  const local = URL.createObjectURL(file);
  state.blobs.push(local);
  img.src = local;
  photo.append(img);
  const info = el("div", "query-info");
  info.append(el("h2", "", "Your photo"));
  info.append(el("div", "item-id", file.name));
  const facts = el("dl", "facts wide");
  fact(facts, "size", `${Math.max(1, Math.round(file.size / 1024))} KB`);
  fact(facts, "shown to", $("photo-gender").value || "any gender");
  fact(facts, "trendiness", fmt($("trendiness").value));
  info.append(facts);
  query.append(photo, info);
  query.hidden = false;
  showProvenance(doc);
  $("results").replaceChildren(...doc.lists.map((l) => grid(`Like your photo (${l.recommendations.length})`, l.recommendations, doc)));
}

// --- actions ------------------------------------------------------------------------------

// A request for results failed: say why, and leave no results of an earlier one on screen.
function failed(ticket, error) {
  if (ticket !== state.ticket) return; // a later request shows something else
  clearResults();
  setStatus(error.message, "error");
  reveal();
}

async function showItem(itemId, quiet = false) {
  itemId = itemId.trim();
  if (!itemId) return;
  state.shown = { kind: "item", id: itemId };
  history.replaceState(null, "", `#item=${enc(itemId)}`);
  if (!quiet) setStatus("loading…", "busy");
  const q = rankingQuery();
  q.set("trendiness", $("trendiness").value);
  const ticket = ++state.ticket;
  try {
    const [item, doc] = await Promise.all([
      api(`/items/${enc(itemId)}`), api(`/items/${enc(itemId)}/similar?${q}`),
    ]);
    if (ticket !== state.ticket) return; // a later request shows something else
    forgetBlobs();
    state.t = Number($("trendiness").value);
    renderItem(item, doc);
    if (!quiet) {
      setStatus("");
      reveal();
    }
  } catch (error) {
    failed(ticket, error);
  }
}

async function showUser(userId, quiet = false) {
  userId = userId.trim();
  if (!userId) return;
  state.shown = { kind: "user", id: userId };
  history.replaceState(null, "", `#user=${enc(userId)}`);
  if (!$("buyer").value.trim()) $("buyer").value = userId;
  if (!quiet) setStatus("loading…", "busy");
  const ticket = ++state.ticket;
  try {
    const user = await api(`/users/${enc(userId)}`);
    const doc = user.purchases.length
      ? await api(`/users/${enc(userId)}/recommendations?${rankingQuery()}`)
      : { lists: [], weights: {}, vectors: { space: $("space").value, weights: {}, taxonomy: "" } };
    if (ticket !== state.ticket) return; // a later request shows something else
    forgetBlobs();
    state.t = user.trendiness;
    renderUser(user, doc);
    if (!quiet) {
      setStatus(user.purchases.length ? "" : `${userId} has no purchases yet`);
      reveal();
    }
  } catch (error) {
    failed(ticket, error);
  }
}

async function showPhoto(file, quiet = false) {
  if (!file) {
    setStatus("choose a photo first (Photo → Search by your photo)", "error");
    return;
  }
  state.shown = { kind: "photo", file };
  history.replaceState(null, "", location.pathname + location.search);
  if (!quiet) setStatus("searching…", "busy");
  const q = rankingQuery();
  q.set("trendiness", $("trendiness").value);
  if ($("photo-gender").value) q.set("gender", $("photo-gender").value);
  const ticket = ++state.ticket;
  try {
    const doc = await api(`/search?${q}`, {
      method: "POST",
      // the photo's own media type; a file the browser cannot name is refused by the service
      headers: { "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
    if (ticket !== state.ticket) return; // a later request shows something else
    forgetBlobs();
    state.t = Number($("trendiness").value);
    renderPhoto(file, doc);
    if (!quiet) {
      setStatus("");
      reveal();
    }
  } catch (error) {
    failed(ticket, error);
  }
}

async function refresh(quiet = false) {
  if (!state.shown) return;
  if (state.shown.kind === "item") await showItem(state.shown.id, quiet);
  else if (state.shown.kind === "user") await showUser(state.shown.id, quiet);
  else await showPhoto(state.shown.file, quiet);
}

async function recordPurchase(itemId) {
  const buyer = $("buyer").value.trim();
  if (!buyer) {
    setStatus("type the buyer's user id (Purchases → Buyer) first", "error");
    $("buyer").focus();
    return;
  }
  try {
    const result = await api("/purchases", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: buyer, item_id: itemId, timestamp: new Date().toISOString() }),
    });
    await refresh(true);
    const now = result.popularity[itemId];
    setStatus(`recorded: ${buyer} bought ${itemId}; its popularity is now ${fmt(now, 0)}`, "ok");
  } catch (error) {
    setStatus(error.message, "error");  // the results shown are still the service's answer
  }
}

// --- start ------------------------------------------------------------------------------------

function resetControls() {
  Object.entries(DEFAULTS).forEach(([id, value]) => { $(id).value = value; });
  ["rec-category", "min-price", "max-price", "popularity-mode"].forEach((id) => { $(id).value = ""; });
  $("any-stock").checked = false;
  syncOutputs();
}

async function load() {
  try {
    await loadCatalog();
    await Promise.all([loadItems(), loadUsers()]);
  } catch (error) {
    $("summary").textContent = "";
    clearResults();
    setStatus(error.message, "error");
    return false;
  }
  return true;
}

async function start() {
  $("api-key").value = sessionStorage.getItem("fashionrec-key") || "";
  $("api-key").addEventListener("change", async () => {
    sessionStorage.setItem("fashionrec-key", $("api-key").value.trim());
    if (await load()) await refresh();
  });
  $("tab-item").addEventListener("click", () => setMode("item"));
  $("tab-user").addEventListener("click", () => setMode("user"));
  $("tab-photo").addEventListener("click", () => setMode("photo"));
  $("item-form").addEventListener("submit", (e) => { e.preventDefault(); showItem($("item-id").value); });
  $("user-form").addEventListener("submit", (e) => { e.preventDefault(); showUser($("user-id").value); });
  $("photo-form").addEventListener("submit", (e) => { e.preventDefault(); showPhoto($("photo-file").files[0]); });
  $("photo-file").addEventListener("change", () => showPhoto($("photo-file").files[0]));
  $("photo-gender").addEventListener("change", () => {
    if ($("photo-file").files[0]) showPhoto($("photo-file").files[0]);
  });
  $("ranking").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("purchase-form").addEventListener("submit", (e) => e.preventDefault());
  $("ranking").addEventListener("input", syncOutputs);
  $("reset").addEventListener("click", () => { resetControls(); refresh(); });
  const reloadItems = () => loadItems().catch((e) => setStatus(e.message, "error"));
  $("gender-filter").addEventListener("change", reloadItems);
  $("category-filter").addEventListener("change", reloadItems);
  if (NARROW.matches) $("ranking-box").open = false;  // on a phone the controls fold away
  resetControls();
  setMode("item");
  if (await load()) {
    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get("item")) {
      $("item-id").value = hash.get("item");
      await showItem(hash.get("item"));
    } else if (hash.get("user")) {
      setMode("user");
      $("user-id").value = hash.get("user");
      await showUser(hash.get("user"));
    } else {
      setStatus("pick an item or a user, or send a photo, to see recommendations");
    }
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
