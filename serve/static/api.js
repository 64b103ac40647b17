// The page's talk with the service: its state, its JSON API (with the key, where one is
// given), the photos it fetches, and the status line.

export const $ = (id) => document.getElementById(id);
export const NARROW = window.matchMedia("(max-width: 800px)");
export const state = { mode: "item", shown: null, shops: {}, blobs: [], ticket: 0, t: null };

export function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export async function api(path, options = {}) {
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

export const enc = encodeURIComponent;

export function showImage(img, itemId) {
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

export function forgetBlobs() {
  state.blobs.forEach((url) => URL.revokeObjectURL(url));
  state.blobs = [];
}

export function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

// On a narrow screen the results sit below the controls: bring them into view.
export function reveal() {
  if (!NARROW.matches) return;
  const status = $("status");
  if (status.getBoundingClientRect().top > window.innerHeight * 0.6) {
    status.scrollIntoView({ block: "start" });
  }
}
