// Minimal live quotes page: polls the GraphQL `quotes` query once a second.
const tokenFromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (tokenFromHash) localStorage.setItem("tickserver.token", tokenFromHash);
const token = localStorage.getItem("tickserver.token");
const query = "{ quotes { symbol last bid ask changePct volume } }";
const fmt = (v, d = 2) => (v === null || v === undefined ? "–" : v.toFixed(d));

async function refresh() {
  const state = document.getElementById("state");
  try {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query }) });
    const body = await res.json();
    if (body.errors) throw new Error(body.errors[0].message);
    const rows = body.data.quotes.map((q) => {
      const cls = q.changePct > 0 ? "up" : q.changePct < 0 ? "down" : "";
      return `<tr><td>${q.symbol}</td><td>${fmt(q.last)}</td><td>${fmt(q.bid)}</td>` +
        `<td>${fmt(q.ask)}</td><td class="${cls}">${fmt(q.changePct)}</td><td>${fmt(q.volume, 0)}</td></tr>`;
    });
    document.querySelector("#quotes tbody").innerHTML = rows.join("");
    state.textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    state.textContent = `disconnected: ${err.message}`;
  }
}
refresh();
setInterval(refresh, 1000);
