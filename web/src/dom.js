// The two DOM helpers every page here uses.

/** A small element builder: el('p', {class: 'x'}, 'text', child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
