// Building the page from data. Text from the API (product names, usernames,
// error messages) only ever becomes a text node, never HTML.
import { ApiError } from "./api.js";

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of nodes(children)) {
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// What a page is drawn from: nodes, with the null a condition left out dropped.
export function nodes(list) {
  return [].concat(list).flat().filter((node) => node !== null && node !== undefined && node !== false);
}

let fieldIds = 0;

// A labelled input, with a place for its error message that the input names
// through aria-describedby.
export function field(label, name, attributes = {}) {
  return labelled(label, name, (id) => h("input", { id, name, "aria-describedby": `${id}-error`, ...attributes }));
}

// A labelled drop-down of `options` ([value, text] pairs), `selected` chosen.
export function choice(label, name, options, selected) {
  return labelled(label, name, (id) => h("select", { id, name, "aria-describedby": `${id}-error` },
    options.map(([value, text]) => h("option", { value, selected: value === selected }, text))));
}

function labelled(label, name, control) {
  const id = `field-${name}-${++fieldIds}`;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    control(id),
    h("span", { class: "field-error", id: `${id}-error`, "data-error-for": name }));
}

// Shows an ApiError on a form: the message at the top, each field's own
// message beside it (the API names fields in `details`, `items.0.quantity`).
export function showError(form, error) {
  clearErrors(form);
  const summary = form.querySelector(".form-error");
  summary.textContent = error.message;
  for (const [name, messages] of Object.entries(error.details || {})) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) {
      slot.textContent = [].concat(messages).join(" ");
      form.querySelector(`[name="${CSS.escape(name)}"]`)?.setAttribute("aria-invalid", "true");
    }
  }
  summary.focus();
}

export function clearErrors(form) {
  form.querySelectorAll(".form-error, .field-error").forEach((slot) => { slot.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
}

export function formError() {
  return h("p", { class: "form-error", role: "alert", tabindex: "-1" });
}

// A form whose submit runs `action(values)`; an ApiError it throws is shown on the form.
export function form(label, children, submitLabel, action) {
  const element = h("form", { "aria-label": label, novalidate: true }, formError(), children,
    h("button", { type: "submit" }, submitLabel));
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = element.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      clearErrors(element);
      await action(Object.fromEntries(new FormData(element)));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showError(element, error);
    } finally {
      button.disabled = false;
    }
  });
  return element;
}
