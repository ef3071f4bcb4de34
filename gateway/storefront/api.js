// The shop's public HTTP API (the one /openapi.json describes), nothing else.

export class ApiError extends Error {
  // status: the HTTP status (0: the gateway could not be reached);
  // code and details: the API's error body ({error, message, details})
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
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

export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
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
  if (payload && payload.message) {
    throw new ApiError(response.status, payload.error, payload.message, payload.details);
  }
  throw new ApiError(response.status, "http_error", `The shop answered ${response.status}. Try again shortly.`);
}

export const api = {
  register: (username, email, password) => call("POST", "/register", { username, email, password }),
  login: (username, password) => call("POST", "/login", { username, password }),
  me: () => call("GET", "/users/me"),
  products: (limit, offset) => call("GET", `/products?limit=${limit}&offset=${offset}`),
  product: (id) => call("GET", `/products/${id}`),
  createProduct: (fields) => call("POST", "/products", fields),
  updateProduct: (id, fields) => call("PATCH", `/products/${id}`, fields),
  stock: (id) => call("GET", `/inventory/${id}`),
  restock: (id, quantity) => call("POST", `/inventory/${id}`, { quantity }),
  writeOff: (id, quantity) => call("DELETE", `/inventory/${id}`, { quantity }),
  placeOrder: (items) => call("POST", "/orders", { items }),
  orders: (limit, offset) => call("GET", `/orders?limit=${limit}&offset=${offset}`),
  everyOrder: (limit, offset) => call("GET", `/orders?scope=all&limit=${limit}&offset=${offset}`),
  order: (id) => call("GET", `/orders/${id}`),
  pay: (id) => call("POST", `/orders/${id}/pay`),
  cancel: (id) => call("POST", `/orders/${id}/cancel`),
};
