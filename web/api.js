// The app's one door to the server: the public JSON API, exactly as any client uses it. The key
// lives in sessionStorage (gone when the tab closes, never in a URL or a log line). Requests that
// are safe to repeat (GETs, and POSTs carrying an Idempotency-Key) are retried on a dropped
// connection, 429 and 503, waiting as long as Retry-After says; the banner tells the user why.

const KEY = "veneer.api_key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  signIn(key) { sessionStorage.setItem(KEY, key); },
  signOut() { sessionStorage.removeItem(KEY); },
};

/** A refusal from the API (problem+json), or a transport failure (status 0). */
export class ApiError extends Error {
  constructor(status, problem, retryAfter = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || (status === 0 ? "network" : "http_error");
    this.detail = problem.detail || this.message;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

const listeners = { unauthenticated: [], retry: [], recovered: [] };

/** `unauthenticated` (the key was refused), `retry` ({reason, seconds}), `recovered`. */
export function on(event, fn) { listeners[event].push(fn); }
function emit(event, arg) { for (const fn of listeners[event]) fn(arg); }

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); reject(new DOMException("aborted", "AbortError")); }, { once: true });
});

/** A fresh Idempotency-Key: one per user action, reused by every retry of that action. */
export function newIdempotencyKey() {
  return `web-${crypto.randomUUID()}`;
}

/** Why a request is being retried, in the user's words. */
function reasonFor(status, code) {
  if (status === 0) return "Lost contact with the server";
  if (status === 429) return code === "quota_exceeded" ? "The daily write quota is used up" : "Too many requests";
  if (status === 503) return "The server is unavailable (shutting down or restarting)";
  return `The server answered ${status}`;
}

function retryAfterSeconds(response) {
  const v = Number.parseInt(response.headers.get("retry-after") || "", 10);
  return Number.isFinite(v) && v >= 0 ? v : null;
}

/**
 * Sends one API request and returns `{status, body, headers}` for 2xx; throws ApiError otherwise.
 * `options`: body (JSON), idempotencyKey, wait (Prefer: wait=N), signal, attempts (default 6),
 * quiet401 (a refused key is the caller's to report, as on the sign-in form).
 */
export async function request(method, path, options = {}) {
  const { body, idempotencyKey, wait, signal } = options;
  const headers = { Accept: "application/json, application/problem+json" };
  const key = session.key;
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  if (wait) headers.Prefer = `wait=${wait}`;
  const repeatable = method === "GET" || Boolean(idempotencyKey);
  const attempts = options.attempts ?? 6;
  let delay = 500;
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      response = await fetch(path, {
        method, headers, signal, cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      if (!repeatable || attempt >= attempts) {
        throw new ApiError(0, { title: "Network error", detail: "The server could not be reached." });
      }
      emit("retry", { reason: reasonFor(0), seconds: delay / 1000 });
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 8000);
      continue;
    }
    if ((response.status === 429 || response.status === 503) && repeatable && attempt < attempts) {
      const seconds = retryAfterSeconds(response) ?? delay / 1000;
      const problem = await response.json().catch(() => ({}));
      emit("retry", { reason: reasonFor(response.status, problem.code), seconds });
      await sleep(Math.max(seconds, 0.2) * 1000, signal);
      delay = Math.min(delay * 2, 8000);
      continue;
    }
    if (attempt > 1) emit("recovered");
    const text = await response.text();
    let parsed = null;
    if (text) {
      try { parsed = JSON.parse(text); } catch { parsed = { detail: text }; }
    }
    if (response.ok) return { status: response.status, body: parsed, headers: response.headers };
    const error = new ApiError(response.status, parsed || {}, retryAfterSeconds(response));
    if (response.status === 401 && !options.quiet401) emit("unauthenticated", error);
    throw error;
  }
}

export const get = (path, options) => request("GET", path, options).then((r) => r.body);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });

/** A query string from the entries that have a value. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * Follows a job until it is terminal: long-polls `GET /v1/humanizations/{id}` with a short
 * `Prefer: wait` so a running job's stage stays current, and keeps trying (with backoff) while
 * the server is away. `onUpdate(job)` gets every state seen.
 */
export async function follow(job, onUpdate, signal) {
  const terminal = (s) => s === "completed" || s === "failed" || s === "canceled";
  let delay = 1000;
  while (!terminal(job.status)) {
    try {
      const path = job.object === "humanization" ? `/v1/humanizations/${job.id}` : `/v1/jobs/${job.id}`;
      job = await get(path, { wait: 2, signal, attempts: 1 });
      delay = 1000;
      emit("recovered");
      onUpdate(job);
    } catch (e) {
      if (e.name === "AbortError") return job;
      if (e.status === 401 || e.status === 404) throw e;
      const seconds = e.retryAfter ?? delay / 1000;
      emit("retry", { reason: reasonFor(e.status, e.code), seconds });
      await sleep(Math.max(seconds, 0.2) * 1000, signal);
      delay = Math.min(delay * 2, 10_000);
    }
  }
  return job;
}
