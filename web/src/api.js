// HTTP helpers: same-origin fetch, the admin key from sessionStorage (never in the page source).

const KEY = "traderops.apiKey";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const auth = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
  onUnauthorized: () => {},
};

/** The account the admin panels show (`?account=`); null: the datahub's default. */
export const account = {
  get id() {
    return sessionStorage.getItem("traderops.account");
  },
  set(id) {
    if (id) sessionStorage.setItem("traderops.account", id);
    else sessionStorage.removeItem("traderops.account");
  },
};

/** Account-bound admin paths get ?account= (accounts, analytics and backtests span all). */
const ACCOUNTLESS = ["/api/v1/accounts", "/api/v1/analytics", "/api/v1/backtests"];
function withAccount(path) {
  const id = account.id;
  if (!id || !path.startsWith("/api/v1/")) return path;
  if (ACCOUNTLESS.some((p) => path.startsWith(p))) return path;
  return `${path}${path.includes("?") ? "&" : "?"}account=${encodeURIComponent(id)}`;
}

function detail(body, status) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    if (typeof body.error === "string") return body.error;
    if (typeof body.errmsg === "string") return body.errmsg;
  }
  return `HTTP ${status}`;
}

/** Fetch JSON. `admin: true` sends X-API-Key; a 401 there asks for the key again. */
export async function api(path, { method = "GET", body, admin = false, timeout = 10_000 } = {}) {
  const headers = { Accept: "application/json" };
  if (admin) {
    const key = auth.key;
    if (!key) {
      auth.onUnauthorized();
      throw new ApiError(401, "locked");
    }
    headers["X-API-Key"] = key;
    path = withAccount(path);
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeout);
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctrl.signal,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (err) {
    throw new ApiError(0, err.name === "AbortError" ? "request timed out" : "datahub unreachable");
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    if (admin && res.status === 401) auth.onUnauthorized();
    throw new ApiError(res.status, detail(data, res.status), data);
  }
  return data;
}

/** An admin file (a report, a CSV) as a Blob, fetched with the key (a link or a new tab
 * could not send it). Throws ApiError like api(). */
export async function adminBlob(path, { timeout = 30_000 } = {}) {
  const key = auth.key;
  if (!key) {
    auth.onUnauthorized();
    throw new ApiError(401, "locked");
  }
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeout);
  try {
    const res = await fetch(path, {
      headers: { "X-API-Key": key },
      signal: ctrl.signal,
      cache: "no-store",
      credentials: "omit",
    });
    if (!res.ok) {
      if (res.status === 401) auth.onUnauthorized();
      let body = null;
      try {
        body = await res.json();
      } catch {
        body = null;
      }
      throw new ApiError(res.status, detail(body, res.status), body);
    }
    return await res.blob();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(0, err.name === "AbortError" ? "request timed out" : "datahub unreachable");
  } finally {
    clearTimeout(timer);
  }
}

/** Like api() but never throws: resolves to {ok, status, data}. */
export async function tryApi(path, opts) {
  try {
    return { ok: true, status: 200, data: await api(path, opts) };
  } catch (err) {
    return { ok: false, status: err.status ?? 0, data: err.body ?? null, error: err };
  }
}
