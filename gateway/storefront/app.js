// The storefront: a page per hash route (#/, #/products/3, #/cart, #/orders/7...),
// each drawn from the public API. The cart lives in this tab's sessionStorage.
import { ApiError, api, session } from "./api.js";
import { choice, field, form, formError, h, nodes, showError } from "./dom.js";

const PAGE_SIZE = 12;
// what the catalogue's address holds besides its offset: a search to share, reload, go back to
const SEARCH_FIELDS = ["q", "category", "min_price", "max_price", "sort"];
const SORTS = [["", "Best match"], ["newest", "Newest"], ["price", "Price, lowest first"],
  ["-price", "Price, highest first"], ["name", "Name"]];
const CART_KEY = "shop.cart";
// an order is pending until inventory answers, normally within a second
const POLL_MS = 400;
const SLOW_POLL_MS = 2000;
const SLOW_AFTER_MS = 15000;

const view = document.getElementById("view");
let me = null; // the logged-in account, from /users/me
let leaving = []; // what to stop when the page changes (pollers)

// --- the cart: {productId: quantity}

const cart = {
  read() { return JSON.parse(sessionStorage.getItem(CART_KEY) || "{}"); },
  write(lines) {
    sessionStorage.setItem(CART_KEY, JSON.stringify(lines));
    document.getElementById("cart-count").textContent =
      Object.values(lines).reduce((sum, quantity) => sum + quantity, 0);
  },
  add(productId, quantity) {
    const lines = this.read();
    lines[productId] = (lines[productId] || 0) + quantity;
    this.write(lines);
  },
  set(productId, quantity) {
    const lines = this.read();
    if (quantity > 0) lines[productId] = quantity; else delete lines[productId];
    this.write(lines);
  },
  clear() { this.write({}); },
};

// --- routing

const routes = [
  [/^#?\/?$/, catalogue],
  [/^#\/products\/(\d+)$/, productPage],
  [/^#\/cart$/, cartPage],
  [/^#\/orders$/, ordersPage],
  [/^#\/orders\/(\d+)$/, orderPage],
  [/^#\/login$/, loginPage],
  [/^#\/register$/, registerPage],
  [/^#\/admin$/, adminPage],
];

let navigation = 0; // the latest route() call; an older one that ends later draws nothing

async function route() {
  const current = ++navigation;
  leaving.forEach((stop) => stop());
  leaving = [];
  view.setAttribute("aria-busy", "true");
  const [hash, query] = location.hash.split("?");
  const params = new URLSearchParams(query || "");
  const [page, match] = routes.map(([pattern, draw]) => [draw, pattern.exec(hash || "#/")])
    .find(([, found]) => found) || [notFound, []];
  const content = await drawn(() => page(params, ...match.slice(1)));
  if (current !== navigation) return;
  view.replaceChildren(...nodes(content));
  view.removeAttribute("aria-busy");
  view.focus();
}

async function notFound() {
  return [h("h1", {}, "Not found"), h("p", {}, "This page does not exist. "),
    h("a", { href: "#/" }, "Back to the catalogue")];
}

// A page's content; an error loading it is shown in its place, as the API worded it.
async function drawn(page) {
  try {
    return await page();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) logOut(false);
    return [h("h1", {}, "Something went wrong"), h("p", { class: "form-error", role: "alert" }, error.message),
      error.status === 401 ? h("p", {}, h("a", { href: "#/login" }, "Log in")) : null];
  }
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

// --- the account

async function loadMe() {
  me = null;
  if (session.token) {
    try {
      me = await api.me();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      session.token = null; // expired: log in again
    }
  }
  const role = me ? me.role : "guest";
  document.querySelectorAll("[data-for]").forEach((element) => {
    const audience = element.dataset.for;
    element.hidden = !(audience === "guest" ? !me : me && (audience === "user" || role === audience));
  });
  document.getElementById("who").textContent = me ? `Signed in as ${me.username}` : "";
}

function logOut(navigate = true) {
  session.token = null;
  loadMe();
  if (navigate) go("#/");
}

// the API's prices are decimal strings in the shop's one currency, which it does not name
function money(amount) {
  return amount;
}

// --- pages

async function catalogue(params) {
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const search = Object.fromEntries(SEARCH_FIELDS.filter((name) => params.get(name))
    .map((name) => [name, params.get(name)]));
  const [categories, page] = await Promise.all([
    api.categories(),
    api.products(PAGE_SIZE, offset, search).catch((error) => {
      if (error instanceof ApiError && error.status === 400) return error; // shown on the form
      throw error;
    }),
  ]);
  const box = searchBox(search, categories.items);
  if (page instanceof ApiError) {
    showError(box, page);
    return [h("h1", {}, "Catalogue"), box];
  }
  const stocks = await Promise.all(page.items.map((product) => api.stock(product.id)));
  const searching = Object.keys(search).length > 0;
  const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
  const current = Math.floor(offset / PAGE_SIZE) + 1;
  const at = (start) => `#/?${new URLSearchParams({ ...search, ...(start ? { offset: start } : {}) })}`;
  return [
    h("h1", {}, "Catalogue"),
    box,
    searching ? h("p", { class: "matches", role: "status" },
      page.total === 1 ? "1 product matches." : `${page.total} products match.`) : null,
    page.items.length ? h("ul", { class: "products" }, page.items.map((product, index) =>
      productCard(product, stocks[index])))
      : h("p", {}, searching ? "Nothing matches this search." : "Nothing for sale yet."),
    h("nav", { class: "pager", "aria-label": "Pages" },
      offset > 0 ? h("a", { href: at(Math.max(0, offset - PAGE_SIZE)), rel: "prev" }, "← Previous") : null,
      h("span", {}, `Page ${current} of ${pages}`),
      offset + PAGE_SIZE < page.total ? h("a", { href: at(offset + PAGE_SIZE), rel: "next" }, "Next →") : null),
  ];
}

// The search form, filled in from the address; searching puts the search in the address.
function searchBox(search, categories) {
  const names = categories.map(({ name }) => name);
  const options = [["", "All categories"], ...categories.map(({ name, count }) => [name, `${name} (${count})`]),
    // a shared address may name a category that has since emptied
    ...(search.category && !names.includes(search.category) ? [[search.category, search.category]] : [])];
  const box = h("form", { role: "search", "aria-label": "Search the catalogue", class: "search", novalidate: true },
    formError(),
    field("Search", "q", { type: "search", value: search.q || "", maxlength: 200, placeholder: "moka, 咖啡…" }),
    choice("Category", "category", options, search.category || ""),
    field("Lowest price", "min_price", { inputmode: "decimal", value: search.min_price || "", placeholder: "0.00" }),
    field("Highest price", "max_price", { inputmode: "decimal", value: search.max_price || "", placeholder: "any" }),
    choice("Sort by", "sort", SORTS, search.sort || ""),
    h("button", { type: "submit" }, "Search"));
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    const asked = [...new FormData(box)].filter(([, value]) => value.trim() !== "");
    go(`#/?${new URLSearchParams(asked)}`);
  });
  return box;
}

function productCard(product, stock) {
  return h("li", { class: "product", "data-product-id": product.id },
    h("h2", {}, h("a", { href: `#/products/${product.id}` }, product.name)),
    h("p", { class: "price" }, money(product.price)),
    product.category ? h("p", { class: "category" }, product.category) : null,
    h("p", { class: "stock" }, availability(stock)),
    addToCart(product, stock));
}

function availability(stock) {
  return stock.available > 0 ? `${stock.available} available` : "Out of stock";
}

function addToCart(product, stock) {
  const note = h("span", { class: "added", role: "status" });
  return h("div", { class: "add" },
    h("button", {
      type: "button", disabled: stock.available <= 0,
      "aria-label": `Add ${product.name} to the cart`,
      onclick: () => { cart.add(product.id, 1); note.textContent = "Added"; },
    }, "Add to cart"), note);
}

async function productPage(params, id) {
  const [product, stock] = await Promise.all([api.product(id), api.stock(id)]);
  return [
    h("p", {}, h("a", { href: "#/" }, "← Catalogue")),
    h("h1", {}, product.name),
    h("p", { class: "price" }, money(product.price)),
    product.category ? h("p", { class: "category" },
      h("a", { href: `#/?${new URLSearchParams({ category: product.category })}` }, product.category)) : null,
    h("p", { class: "stock" }, availability(stock)),
    product.description ? h("p", { class: "description" }, product.description) : null,
    addToCart(product, stock),
    me && me.role === "admin" ? adminProductForms(product, stock) : null,
  ];
}

// a form's empty category field means no category: null to the API
function withCategory(values) {
  return { ...values, category: values.category.trim() === "" ? null : values.category };
}

function adminProductForms(product, stock) {
  return h("section", { class: "admin", "aria-label": "Manage this product" },
    h("h2", {}, "Manage"),
    h("p", {}, `On hand ${stock.on_hand}, reserved ${stock.reserved}.`),
    form("Edit the product", [
      field("Name", "name", { value: product.name, required: true, maxlength: 200 }),
      field("Description", "description", { value: product.description }),
      field("Price", "price", { value: product.price, inputmode: "decimal", required: true }),
      field("Category (empty: none)", "category", { value: product.category || "", maxlength: 50 }),
    ], "Save", async (values) => {
      await api.updateProduct(product.id, withCategory(values));
      route();
    }),
    form("Restock", field("Units to add", "quantity", { type: "number", min: 1, required: true }),
      "Restock", async ({ quantity }) => {
        await api.restock(product.id, Number(quantity));
        route();
      }),
    form("Write off", field("Units to write off", "quantity", { type: "number", min: 1, required: true }),
      "Write off", async ({ quantity }) => {
        await api.writeOff(product.id, Number(quantity));
        route();
      }));
}

async function cartPage() {
  const lines = cart.read();
  const ids = Object.keys(lines);
  if (!ids.length) {
    return [h("h1", {}, "Cart"), h("p", {}, "Your cart is empty. "), h("a", { href: "#/" }, "Browse the catalogue")];
  }
  const products = await Promise.all(ids.map((id) => api.product(id)));
  const placing = h("form", { "aria-label": "Place the order" }, formError(),
    me ? h("button", { type: "submit" }, "Place the order")
      : h("p", {}, h("a", { href: "#/login" }, "Log in"), " to place the order."));
  placing.addEventListener("submit", async (event) => {
    event.preventDefault();
    placing.querySelector("button").disabled = true;
    try {
      // the quantities as they are now, changed on this page or not
      const order = await api.placeOrder(Object.entries(cart.read()).map(
        ([id, quantity]) => ({ product_id: Number(id), quantity })));
      cart.clear();
      go(`#/orders/${order.id}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showError(placing, error);
      placing.querySelector("button").disabled = false;
    }
  });
  return [
    h("h1", {}, "Cart"),
    h("table", { class: "lines" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Product"), h("th", { scope: "col" }, "Price"),
        h("th", { scope: "col" }, "Quantity"), h("th", { scope: "col" }, h("span", { class: "hidden" }, "Remove")))),
      h("tbody", {}, products.map((product) => cartLine(product, lines[product.id])))),
    placing,
  ];
}

function cartLine(product, quantity) {
  const id = `quantity-${product.id}`;
  return h("tr", { "data-product-id": product.id },
    h("td", {}, h("label", { for: id }, product.name)),
    h("td", {}, money(product.price)),
    h("td", {}, h("input", {
      id, type: "number", min: 1, value: quantity, class: "quantity",
      onchange: (event) => cart.set(product.id, Math.max(1, Number(event.target.value) || 1)),
    })),
    h("td", {}, h("button", {
      type: "button", "aria-label": `Remove ${product.name}`,
      onclick: () => { cart.set(product.id, 0); route(); },
    }, "Remove")));
}

const ORDERS_PAGE_SIZE = 20;

async function ordersPage(params) {
  return ordersListing(h("h1", {}, "My orders"), "#/orders", params, api.orders);
}

// A page of orders as a table, with links to the newer and older pages.
async function ordersListing(heading, route, params, fetchPage) {
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const page = await fetchPage(ORDERS_PAGE_SIZE, offset);
  return [
    heading,
    page.items.length ? h("table", { class: "lines" },
      h("thead", {}, h("tr", {}, ["Order", "Status", "Total", "Placed"].map((heading) => h("th", { scope: "col" }, heading)))),
      h("tbody", {}, page.items.map((order) => h("tr", { "data-order-id": order.id },
        h("td", {}, h("a", { href: `#/orders/${order.id}` }, `#${order.id}`)),
        h("td", {}, statusBadge(order.status)),
        h("td", {}, money(order.total)),
        h("td", {}, new Date(order.created_at).toLocaleString())))))
      : h("p", {}, "No orders yet."),
    h("nav", { class: "pager", "aria-label": "Pages" },
      offset > 0 ? h("a", { href: `${route}?offset=${Math.max(0, offset - ORDERS_PAGE_SIZE)}` }, "← Newer") : null,
      offset + ORDERS_PAGE_SIZE < page.total ? h("a", { href: `${route}?offset=${offset + ORDERS_PAGE_SIZE}` }, "Older →") : null),
  ];
}

const STATUS_TEXT = {
  pending: "Pending: reserving the stock…",
  awaiting_payment: "Awaiting payment",
  paid: "Paid",
  rejected: "Rejected",
  cancelled: "Cancelled",
  expired: "Expired: not paid in time",
};

function statusBadge(status) {
  return h("span", { class: `status status-${status}`, "data-status": status }, STATUS_TEXT[status] || status);
}

async function orderPage(params, id) {
  const section = h("section", { class: "order", "aria-live": "polite" });
  const draw = (order) => section.replaceChildren(...nodes(orderDetails(order, draw)));
  const order = await api.order(id);
  draw(order);
  if (order.status === "pending") follow(order, draw);
  return [h("p", {}, h("a", { href: "#/orders" }, "← My orders")), section];
}

// Polls a pending order until inventory has answered, redrawing it each time.
function follow(order, draw) {
  const started = Date.now();
  let timer = null;
  const poll = async () => {
    try {
      const latest = await api.order(order.id);
      draw(latest);
      if (latest.status !== "pending") return;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error; // a hiccup: try again
    }
    timer = setTimeout(poll, Date.now() - started > SLOW_AFTER_MS ? SLOW_POLL_MS : POLL_MS);
  };
  timer = setTimeout(poll, POLL_MS);
  leaving.push(() => clearTimeout(timer));
}

function orderDetails(order, draw) {
  const actions = h("form", { "aria-label": "Order actions" }, formError());
  const act = (label, request) => h("button", {
    type: "button",
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        draw(await request(order.id));
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        showError(actions, error);
        event.target.disabled = false;
      }
    },
  }, label);
  if (order.status === "awaiting_payment") actions.append(act("Pay", api.pay));
  if (order.status === "pending" || order.status === "awaiting_payment") actions.append(act("Cancel", api.cancel));
  return [
    h("h1", {}, `Order #${order.id}`),
    h("p", {}, "Status: ", statusBadge(order.status)),
    order.status === "rejected" ? rejection(order) : null,
    order.expires_at && order.status === "awaiting_payment"
      ? h("p", {}, `Pay before ${new Date(order.expires_at).toLocaleString()}; the stock is held until then.`) : null,
    h("table", { class: "lines" },
      h("thead", {}, h("tr", {}, ["Product", "Quantity", "Unit price"].map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, order.items.map((line) => h("tr", {},
        h("td", {}, line.name), h("td", {}, line.quantity), h("td", {}, money(line.unit_price)))))),
    h("p", { class: "total" }, `Total ${money(order.total)}`),
    actions,
  ];
}

function rejection(order) {
  const names = Object.fromEntries(order.items.map((line) => [line.product_id, line.name]));
  return h("div", { class: "rejection", role: "alert" },
    h("p", {}, order.reason === "insufficient_stock" ? "Not enough stock for:" : `Rejected: ${order.reason}`),
    h("ul", {}, (order.short || []).map((line) =>
      h("li", {}, `${names[line.product_id]}: ${line.requested} asked, ${line.available} available`))));
}

async function loginPage() {
  return [h("h1", {}, "Log in"), form("Log in", [
    field("Username", "username", { autocomplete: "username", required: true }),
    field("Password", "password", { type: "password", autocomplete: "current-password", required: true }),
  ], "Log in", async ({ username, password }) => {
    session.token = (await api.login(username, password)).access_token;
    await loadMe();
    go(Object.keys(cart.read()).length ? "#/cart" : "#/");
  })];
}

async function registerPage() {
  return [h("h1", {}, "Register"), form("Register", [
    field("Username", "username", { autocomplete: "username", required: true }),
    field("Email", "email", { type: "email", autocomplete: "email", required: true }),
    field("Password (8 characters or more)", "password", { type: "password", autocomplete: "new-password", required: true }),
  ], "Register", async ({ username, email, password }) => {
    await api.register(username, email, password);
    session.token = (await api.login(username, password)).access_token;
    await loadMe();
    go(Object.keys(cart.read()).length ? "#/cart" : "#/");
  })];
}

async function adminPage(params) {
  if (!me || me.role !== "admin") {
    return [h("h1", {}, "Admin"), h("p", {}, "Only an admin may see this page. "), h("a", { href: "#/login" }, "Log in")];
  }
  return [
    h("h1", {}, "Admin"),
    h("h2", {}, "Add a product"),
    form("Add a product", [
      field("Name", "name", { required: true, maxlength: 200 }),
      field("Description", "description"),
      field("Price", "price", { inputmode: "decimal", required: true, placeholder: "9.90" }),
      field("Category (optional)", "category", { maxlength: 50 }),
    ], "Add", async (values) => {
      const created = await api.createProduct(withCategory(values));
      go(`#/products/${created.id}`);
    }),
    h("p", {}, "To edit a product, restock it or write stock off, open it from the catalogue."),
    ...await ordersListing(h("h2", {}, "Every order"), "#/admin", params, api.everyOrder),
  ];
}

// --- start

document.getElementById("logout").addEventListener("click", () => logOut());
window.addEventListener("hashchange", route);
cart.write(cart.read());
loadMe().then(route, (error) => {
  view.replaceChildren(h("p", { class: "form-error", role: "alert" }, error.message));
});
