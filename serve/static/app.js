// The fashionrec page: pick an item or a user, or send a photo, see the recommendations and
// the terms of their relevance, record a purchase. It only calls the service's JSON API.

import { $, NARROW, api, enc, forgetBlobs, reveal, setStatus, state } from "./api.js";
import {
  clearResults, el, fmt, onCard, renderItem, renderPhoto, renderUser,
} from "./render.js";

const DEFAULTS = { k: 8, "w-visual": 0.6, "w-popularity": 0.2, "w-category": 0.2,
  "w-distance": 0, gamma: 2, trendiness: 0.5, "max-km": "" };

// --- controls ------------------------------------------------------------------------

function syncOutputs() {
  document.querySelectorAll("output[for]").forEach((out) => {
    out.textContent = Number($(out.htmlFor).value).toFixed(2);
  });
}

function rankingQuery() {
  const q = new URLSearchParams();
  q.set("k", $("k").value || "8");
  if ($("space").value) q.set("space", $("space").value);
  const weights = $("weights-mode").value;
  if (weights === "default") {  // the sliders; fitted ("") and the paper's send none
    q.set("w_visual", $("w-visual").value);
    q.set("w_popularity", $("w-popularity").value);
    q.set("w_category", $("w-category").value);
    q.set("w_distance", $("w-distance").value);
    q.set("gamma", $("gamma").value);
  } else if (weights) {
    q.set("preset", weights);
  }
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

// --- the catalog, the item list and the user list ------------------------------------

function syncWeights() {
  $("hand-set").disabled = $("weights-mode").value !== "default";
}

async function loadCatalog() {
  const catalog = await api("/catalog");
  const fitted = $("fitted-option");
  if (catalog.profile) {
    const v = catalog.profile.validation;
    fitted.textContent = `fitted to the shop's sales (hit rate ${fmt(v.tuned, 3)} vs ` +
      `${fmt(v.default, 3)} hand-set)`;
  } else {
    fitted.textContent = "fitted (not tuned yet: hand-set weights rank)";
  }
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

// --- actions -------------------------------------------------------------------------

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

// --- start ---------------------------------------------------------------------------

function resetControls() {
  Object.entries(DEFAULTS).forEach(([id, value]) => { $(id).value = value; });
  ["rec-category", "min-price", "max-price", "popularity-mode", "weights-mode"]
    .forEach((id) => { $(id).value = ""; });
  syncWeights();
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
  onCard.similar = (itemId) => { setMode("item"); $("item-id").value = itemId; showItem(itemId); };
  onCard.buy = recordPurchase;
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
  $("weights-mode").addEventListener("change", () => { syncWeights(); refresh(); });
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
