// What the page draws: the query (an item, a user, a photo), the recommendation cards with
// the terms of their relevance, and what a user bought.

import { $, state, showImage, forgetBlobs } from "./api.js";

const TERMS = ["visual", "popularity", "category", "distance"];
const TERM_NAMES = { visual: "visual", popularity: "trend match", category: "category", distance: "distance" };

// What a card's buttons do (set by the page: "Similar" shows the item, "Record purchase" buys it).
export const onCard = { similar: (itemId) => {}, buy: (itemId) => {} };

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function fmt(value, digits = 2) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

export function km(value) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(1)}\u00a0km`;
}

export function money(value) {
  return value === null || value === undefined ? null : Number(value).toFixed(2);
}

// Sales as a person reads them: a count (all-time), or the decayed count as of now
// (trending: each sale counts 2^(−age / half-life)), to 2 decimals.
export function sales(value, trending) {
  if (value === null || value === undefined) return "—";
  const number = Number(value);
  if (!trending) return number.toFixed(0);
  return number > 0 && number < 0.01 ? "<0.01" : number.toFixed(2);
}

export const SALES_EXPLAINED = {
  "all-time": "all-time popularity: the item's sales (with its initial popularity)",
  trending: "trending popularity: the item's sales as of now, each counting 2^(−age / half-life)",
};

export function isTrending(doc) {
  return String(doc.popularity || "").startsWith("trending");
}

export function shopName(id) {
  if (!id) return "—";
  return state.shops[id] ? state.shops[id].name : id;
}

export function fact(list, name, value, className, title) {
  const dt = el("dt", "", name);
  if (title) dt.title = title;
  list.append(dt);
  const dd = el("dd", className || "", value);
  list.append(dd);
  return dd;
}

// The shop's name for an item, a link to its page where it has one (else the item id).
export function itemName(className, name, url, itemId) {
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

// a blended list (ranked by the profile `fashionrec tune` fitted) shows each term as it
// is, with no weighted bar: its weights are many and signed
function fittedTerms(rec, profile) {
  const wrap = el("div", "relevance");
  const head = el("div", "relevance-head");
  head.append(el("span", "", "relevance (fitted)"), el("strong", "score", fmt(rec.relevance, 3)));
  head.title = "the weighted sum of every feature, by the weights fitted to this shop's sales " +
    `(validation hit rate@10: ${Object.entries(profile.validation)
      .map(([name, value]) => `${name} ${fmt(value, 3)}`).join(", ")})`;
  const terms = el("div", "terms");
  [["visual", fmt(rec.visual, 3)], ["popularity", fmt(rec.popularity_term, 3)],
    ["category", fmt(rec.category_sim, 2)]].forEach(([term, raw]) => {
    const row = el("div", `term ${term}`);
    row.append(el("span", `key ${term}`, TERM_NAMES[term]), el("span", "raw", raw));
    terms.append(row);
  });
  wrap.append(head, terms);
  return wrap;
}

export function termBar(rec, weights) {
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

const SOURCES_EXPLAINED = "where this candidate came from: visual (like a purchase), trending " +
  "(selling now), category (a best seller of a category bought), copurchase (bought by the " +
  "same shoppers), colour (colours like a purchase's)";

export function card(rec, weights, trending, profile = null) {
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
  if (rec.sources && rec.sources.length) {
    fact(facts, "sources", rec.sources.join(" + "), "sources", SOURCES_EXPLAINED);
  }
  const actions = el("div", "actions");
  const more = el("button", "quiet", "Similar");
  more.type = "button";
  more.addEventListener("click", () => onCard.similar(rec.item_id));
  const buy = el("button", "buy", "Record purchase");
  buy.type = "button";
  buy.addEventListener("click", () => onCard.buy(rec.item_id));
  actions.append(more, buy);
  const terms = profile ? fittedTerms(rec, profile) : termBar(rec, weights);
  body.append(title, id, facts, terms, actions);
  article.append(figure, body);
  return article;
}

export function grid(title, recs, doc) {
  const section = el("section", "list");
  section.append(el("h3", "", title));
  if (!recs.length) {
    section.append(el("p", "hint", "nothing matches: widen the filters"));
    return section;
  }
  const cards = el("div", "grid");
  const trending = isTrending(doc);
  recs.forEach((rec) => cards.append(card(rec, doc.weights, trending, doc.profile)));
  section.append(cards);
  return section;
}

export function showProvenance(doc) {
  const weights = Object.entries(doc.vectors.weights)
    .map(([label, count]) => `${label} ${count}`).join(", ") || "unknown";
  const popularity = doc.popularity ? ` · popularity ${doc.popularity}` : "";
  $("provenance").textContent =
    `· ${doc.vectors.space} vectors: ${weights} · taxonomy ${doc.vectors.taxonomy}${popularity}`;
  $("hand-set-legend").hidden = Boolean(doc.profile);
  $("fitted-legend").hidden = !doc.profile;
  $("legend").hidden = false;
}

export function clearResults() {
  forgetBlobs();
  $("query").replaceChildren();
  $("query").hidden = true;
  $("legend").hidden = true;
  $("results").replaceChildren();
}

export function renderItem(item, doc) {
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
  buy.addEventListener("click", () => onCard.buy(item.item_id));
  info.append(...(p.name || p.url ? [name, id] : [id]), facts, buy);
  query.append(photo, info);
  query.hidden = false;
  showProvenance(doc);
  $("results").replaceChildren(...doc.lists.map((l) => grid(`Like this (${l.recommendations.length})`, l.recommendations, doc)));
}

export function boughtTile(p) {
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

export function renderUser(user, doc) {
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

export function renderPhoto(file, doc) {
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
