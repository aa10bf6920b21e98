// The API token: taken from `#token=…` in the URL (then removed from the address bar), else
// from localStorage, else asked for when the server says it needs one (HTTP 401, WebSocket
// close 4401/4403). It is only ever sent to this page's own origin.

const KEY = "tickserver.token";

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null; // storage disabled: keep the token for this page only
  }
}

let memoryToken = null;

/** Take a token from the URL fragment, store it, and strip it from the address bar. */
export function tokenFromUrl() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (!token) return;
  setToken(token);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

export function getToken() {
  return storage()?.getItem(KEY) ?? memoryToken;
}

export function setToken(token) {
  memoryToken = token || null;
  const s = storage();
  if (!s) return;
  if (token) s.setItem(KEY, token);
  else s.removeItem(KEY);
}

let pending = null;

/**
 * Ask for a token with the page's dialog; resolves with the token once entered. Several
 * callers asking at once share one dialog.
 */
export function askToken({ rejected = false } = {}) {
  const dialog = document.getElementById("token-dialog");
  const form = dialog.querySelector("form");
  const input = dialog.querySelector("input[name=token]");
  const message = dialog.querySelector(".token-message");
  message.textContent = rejected
    ? "The server refused this token. Enter the API token:"
    : "This server requires an API token:";
  if (pending) return pending;
  pending = new Promise((resolve) => {
    const onSubmit = (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) {
        input.focus();
        return;
      }
      form.removeEventListener("submit", onSubmit);
      setToken(token);
      input.value = "";
      dialog.close();
      pending = null;
      resolve(token);
    };
    form.addEventListener("submit", onSubmit);
    // Escape must not leave the page without a way back to the prompt.
    dialog.addEventListener("cancel", (ev) => ev.preventDefault());
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return pending;
}
