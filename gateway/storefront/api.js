// The shop's public HTTP API (the one /openapi.json describes), nothing else.

export class ApiError extends Error {
  // status: the HTTP status (0: the gateway could not be reached);
  // code and details: the API's error body ({error, message, details})
  constructor(status, code, message, details, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.retryAfter = retryAfter;  // seconds, from a Retry-After header
  }
}

const TOKEN_KEY = "shop.token";

// The bearer token lives in this tab's sessionStorage: gone with the tab,
// never sent by the browser on its own (no cookie).
export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export async function call(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The shop cannot be reached. Check your connection and try again.");
  }
  if (response.status === 204) return null;
  let payload = null;
  try { payload = await response.json(); } catch { /* not JSON: a proxy's page, say */ }
  if (response.ok) return payload;
  const retryAfter = Number(response.headers.get("Retry-After")) || undefined;
  if (payload && payload.message) {
    throw new ApiError(response.status, payload.error, payload.message, payload.details, retryAfter);
  }
  throw new ApiError(response.status, "http_error", `The shop answered ${response.status}. Try again shortly.`);
}

// Placing, paying and cancelling must happen once. Each action carries a
// fresh Idempotency-Key and, when the shop could not be reached, was
// unavailable (503) or was still busy with it (409 request_in_progress),
// is sent again with the same key: the shop answers a retry as it answered
// the first request, so a retry never places an order or charges twice.
const ONCE_ATTEMPTS = 4;

function newIdempotencyKey() {
  // getRandomValues works on plain http too, where randomUUID does not
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function worthRetrying(error) {
  return error.status === 0 || error.status === 503 ||
    (error.status === 409 && error.code === "request_in_progress");
}

export async function callOnce(method, path, body) {
  const headers = { "Idempotency-Key": newIdempotencyKey() };
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call(method, path, body, headers);
    } catch (error) {
      if (!(error instanceof ApiError) || !worthRetrying(error) || attempt === ONCE_ATTEMPTS) throw error;
      const seconds = Math.min(error.retryAfter || attempt, 5);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }
}

export const api = {
  register: (username, email, password) => call("POST", "/register", { username, email, password }),
  login: (username, password) => call("POST", "/login", { username, password }),
  me: () => call("GET", "/users/me"),
  // search: {q, category, min_price, max_price, sort}, each optional
  products: (limit, offset, search = {}) =>
    call("GET", `/products?${new URLSearchParams({ ...search, limit, offset })}`),
  categories: () => call("GET", "/categories"),
  product: (id) => call("GET", `/products/${id}`),
  createProduct: (fields) => call("POST", "/products", fields),
  updateProduct: (id, fields) => call("PATCH", `/products/${id}`, fields),
  stock: (id) => call("GET", `/inventory/${id}`),
  restock: (id, quantity) => call("POST", `/inventory/${id}`, { quantity }),
  writeOff: (id, quantity) => call("DELETE", `/inventory/${id}`, { quantity }),
  placeOrder: (items) => callOnce("POST", "/orders", { items }),
  orders: (limit, offset) => call("GET", `/orders?limit=${limit}&offset=${offset}`),
  everyOrder: (limit, offset) => call("GET", `/orders?scope=all&limit=${limit}&offset=${offset}`),
  order: (id) => call("GET", `/orders/${id}`),
  pay: (id) => callOnce("POST", `/orders/${id}/pay`),
  cancel: (id) => callOnce("POST", `/orders/${id}/cancel`),
};
