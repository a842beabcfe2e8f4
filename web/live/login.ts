// The login page: trades the one-time secret in the URL fragment for a session (its HttpOnly
// cookie, and its token in the answer's body, kept in this tab's sessionStorage), then wipes the
// fragment from the address bar and history and opens the live view.
import { saveSessionToken } from "../shared/console-api.ts";

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
  const { csrf } = (await res.json()) as { csrf: string };
  saveSessionToken(csrf);
  location.replace("/console/");
}

login().catch((err: unknown) => {
  if (statusLine) statusLine.textContent = err instanceof Error ? err.message : String(err);
});
