// Building the page from data: every string becomes a text node, never markup, so a name like
// `<img src=x onerror=alert(1)>` shows as those characters. Nothing here uses innerHTML.

/** An element: `attrs` sets properties/attributes (`on*` functions become listeners). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "for") {
      el.htmlFor = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "disabled") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the app (handled by the router, a real URL for reload and new tabs). */
export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** A timestamp from the API shown in the reader's time zone, the exact value on hover. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return h("time", { datetime: iso, title: iso }, Number.isNaN(d.getTime()) ? iso : dateFormat.format(d));
}

export function fixed(x, digits = 3) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "—";
}

/** A short id for tables; the whole id is in the title and the link. */
export function shortId(id) {
  // UUIDv7 ids begin with their timestamp, so ids made together share a prefix: show the tail.
  return h("code", { title: id }, `…${String(id).slice(-8)}`);
}

/** A message box: kind is "error", "warn", "ok" or "info". */
export function notice(kind, ...children) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}
