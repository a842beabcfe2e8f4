// The login page: trades the one-time secret in the URL fragment for the session cookies, then
// wipes the fragment from the address bar and history and opens the live view.
const statusLine = document.getElementById("status");
const secret = location.hash.slice(1);
history.replaceState(null, "", location.pathname);

async function login(): Promise<void> {
  if (!secret) throw new Error("this link carries no login secret; run 'moat console' for one");
  const res = await fetch("/console/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ secret }),
    credentials: "same-origin",
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new Error(body?.error?.message ?? `sign-in refused (HTTP ${res.status})`);
  }
  location.replace("/console/");
}

login().catch((err: unknown) => {
  if (statusLine) statusLine.textContent = err instanceof Error ? err.message : String(err);
});
