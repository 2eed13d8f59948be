// Small DOM helpers: elements are built with textContent only, never from HTML strings, so a
// value recorded in a trace can never become markup.

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat(Infinity)) if (child) node.append(child);
  return node;
}

// A recorded value as text: strings as recorded, everything else as JSON.
export function show(value) {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function shortPath(path) {
  if (!path) return "?";
  const parts = String(path).split("/");
  return parts.length > 2 ? "…/" + parts.slice(-2).join("/") : String(path);
}

// "0x1a" and 26 and "26" are the same number (EIP-7756): the page compares values so.
export function sameValue(a, b) {
  const big = (v) => {
    if (typeof v === "number" && Number.isInteger(v)) return BigInt(v);
    if (typeof v === "string" && /^(0x[0-9a-fA-F]+|-?[0-9]+)$/.test(v)) return BigInt(v);
    return null;
  };
  const x = big(a);
  const y = big(b);
  if (x !== null && y !== null) return x === y;
  return JSON.stringify(a) === JSON.stringify(b);
}
