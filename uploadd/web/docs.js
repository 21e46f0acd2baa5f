// The API description page: fetches /openapi.json and renders every route,
// grouped by tag, with who may call it, its parameters, body, answers and
// the schemas they use. Plain DOM, no library, so it works offline.
"use strict";

const METHODS = ["get", "put", "post", "patch", "delete", "head", "options"];
let doc = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Text with `code` spans and blank-line paragraphs (the markdown the
// document uses), as nodes.
function prose(text) {
  if (!text) return [];
  return text.trim().split(/\n\s*\n/).map((para) => {
    const p = el("p");
    para.replace(/\s*\n\s*/g, " ").split(/(`[^`]+`)/).forEach((piece) => {
      if (piece.startsWith("`") && piece.endsWith("`") && piece.length > 1) {
        p.append(el("code", {}, piece.slice(1, -1)));
      } else if (piece) {
        p.append(piece);
      }
    });
    return p;
  });
}

function anchor(kind, name) {
  return `${kind}-${name.replace(/[^A-Za-z0-9_-]+/g, "-")}`;
}

function resolve(thing) {
  if (!thing || !thing.$ref) return thing;
  const path = thing.$ref.replace(/^#\//, "").split("/");
  return path.reduce((at, key) => (at ? at[key] : undefined), doc);
}

function refName(schema) {
  return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
}

function typeOf(schema) {
  if (!schema) return "any";
  const name = refName(schema);
  if (name) return name;
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.oneOf) return schema.oneOf.map(typeOf).join(" or ");
  if (schema.allOf) return schema.allOf.map(typeOf).join(" and ");
  const types = [].concat(schema.type || "any");
  return types.map((t) => {
    if (t === "array") return `array of ${typeOf(schema.items)}`;
    if (t === "string" && schema.format) return `string (${schema.format})`;
    return t;
  }).join(" or ");
}

// A schema as a list of its fields; a named schema links to its entry
// below (and is expanded there, once).
function schemaView(schema, depth) {
  const name = refName(schema);
  if (name) {
    return el("span", { class: "type" }, el("a", { href: `#${anchor("schema", name)}` }, name));
  }
  if (!schema) return el("span", { class: "type" }, "any");
  const parts = [];
  if (schema.allOf) {
    schema.allOf.forEach((part) => parts.push(schemaView(part, depth)));
    return el("div", {}, parts);
  }
  const props = schema.properties || (schema.items && schema.items.properties ? schema.items.properties : null);
  const holder = schema.properties ? schema : schema.items;
  if (!props || depth > 4) {
    parts.push(el("span", { class: "type" }, typeOf(schema)));
    if (schema.description) parts.push(" — ", ...prose(schema.description).flatMap((p) => [...p.childNodes]));
    return el("span", {}, parts);
  }
  if (!schema.properties) parts.push(el("span", { class: "type" }, "array of objects:"));
  if (schema.description) parts.push(...prose(schema.description));
  const required = new Set(holder.required || []);
  const list = el("ul", { class: "fields" });
  for (const [field, sub] of Object.entries(props)) {
    const nested = !refName(sub) && (sub.properties || (sub.items && sub.items.properties));
    list.append(el("li", {},
      el("code", {}, field), " ",
      required.has(field) ? el("span", { class: "req" }, "required ") : null,
      nested ? schemaView(sub, depth + 1) : [
        el("span", { class: "type" }, refName(sub)
          ? el("a", { href: `#${anchor("schema", refName(sub))}` }, refName(sub))
          : typeOf(sub)),
        sub.description ? [" — ", ...prose(sub.description).flatMap((p) => [...p.childNodes])] : null,
      ]));
  }
  parts.push(list);
  return el("div", {}, parts);
}

function whoMay(operation) {
  const security = operation.security || doc.security || [];
  if (!security.length) return el("p", {}, "Anyone: no token needed.");
  const ways = security.map((requirement) => Object.entries(requirement).map(([scheme, scopes]) =>
    scopes.length ? `${scheme} token with scope ${scopes.join(" + ")}` : scheme).join(" and "));
  return el("p", {}, "Who may call it: ", ways.join("; or "), ".");
}

function parametersView(parameters) {
  if (!parameters.length) return null;
  const rows = parameters.map(resolve).map((p) => el("tr", {},
    el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
    el("td", {}, p.in),
    el("td", { class: "type" }, typeOf(p.schema)),
    el("td", {}, prose(p.description))));
  return [el("h3", {}, "Parameters"), el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, ["name", "in", "type", "what it is"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows)))];
}

function contentView(content) {
  return Object.entries(content || {}).map(([type, media]) => el("div", {},
    el("h4", {}, type), media.schema ? schemaView(media.schema, 0) : null));
}

function bodyView(body) {
  if (!body) return null;
  const resolved = resolve(body);
  return [el("h3", {}, "Request body", resolved.required ? "" : " (optional)"),
    ...prose(resolved.description), ...contentView(resolved.content)];
}

function problemOnly(content) {
  const types = Object.keys(content || {});
  return types.length === 1 && types[0] === "application/problem+json";
}

function responsesView(responses) {
  const items = Object.entries(responses || {}).map(([status, answer]) => {
    const resolved = resolve(answer);
    const headers = Object.keys(resolved.headers || {});
    return el("li", {},
      el("strong", {}, status), " ", ...prose(resolved.description).flatMap((p) => [...p.childNodes]),
      headers.length ? el("div", { class: "state" }, "Headers: ", headers.map((h) => el("code", {}, h)).flatMap((c, i) => (i ? [", ", c] : [c]))) : null,
      problemOnly(resolved.content) ? el("span", { class: "type" }, " (application/problem+json)")
        : Object.keys(resolved.content || {}).length ? el("div", {}, contentView(resolved.content)) : null);
  });
  return [el("h3", {}, "Answers"), el("ul", { class: "fields" }, items)];
}

function operationView(path, method, operation, item) {
  const parameters = [...(item.parameters || []), ...(operation.parameters || [])];
  const id = anchor("op", operation.operationId || `${method}-${path}`);
  const details = el("details", { class: "op", id, "data-search": `${method} ${path} ${operation.summary || ""} ${operation.description || ""}`.toLowerCase() },
    el("summary", {},
      el("span", { class: `method ${method}` }, method),
      el("span", { class: "path" }, path),
      el("span", {}, operation.summary || ""),
      operation["x-internal"] ? el("span", { class: "internal" }, "cluster-internal") : null),
    el("div", { class: "body" },
      prose(operation.description),
      whoMay(operation),
      parametersView(parameters),
      bodyView(operation.requestBody),
      responsesView(operation.responses)));
  return details;
}

function render() {
  document.title = `${doc.info.title} API ${doc.info.version}`;
  document.getElementById("version").textContent = `version ${doc.info.version}`;
  document.getElementById("intro").append(
    doc.info.summary ? el("p", {}, el("strong", {}, doc.info.summary)) : "",
    ...prose(doc.info.description));

  const schemes = document.getElementById("schemes");
  for (const [name, scheme] of Object.entries(doc.components.securitySchemes || {})) {
    schemes.append(el("dt", {}, el("code", {}, name), ` (${scheme.type}${scheme.scheme ? " " + scheme.scheme : ""}${scheme.in ? ", in " + scheme.in + " " + scheme.name : ""})`),
      el("dd", {}, prose(scheme.description)));
  }
  document.getElementById("auth").hidden = false;

  const tags = (doc.tags || []).map((t) => t.name);
  const byTag = new Map(tags.map((t) => [t, []]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = (operation.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(path, method, operation, item));
    }
  }
  const toc = document.getElementById("toc");
  const families = document.getElementById("families");
  for (const [tag, views] of byTag) {
    if (!views.length) continue;
    const info = (doc.tags || []).find((t) => t.name === tag) || {};
    const id = anchor("tag", tag);
    toc.append(el("a", { href: `#${id}` }, tag));
    families.append(el("section", { class: "family", id, "aria-labelledby": `${id}-title` },
      el("h2", { id: `${id}-title` }, tag), prose(info.description), views));
  }

  const list = document.getElementById("schema-list");
  for (const [name, schema] of Object.entries(doc.components.schemas || {})) {
    list.append(el("section", { id: anchor("schema", name), "aria-label": name },
      el("h3", {}, name), schemaView(schema.allOf ? { allOf: schema.allOf } : { ...schema, $ref: undefined }, 0)));
  }
  document.getElementById("schemas").hidden = false;
  document.getElementById("filter-box").hidden = false;
  document.getElementById("filter").addEventListener("input", filter);
  filter();
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
    if (target) target.scrollIntoView();
  }
}

function filter() {
  const words = document.getElementById("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const op of document.querySelectorAll(".op")) {
    const match = words.every((w) => op.dataset.search.includes(w));
    op.hidden = !match;
    shown += match ? 1 : 0;
  }
  for (const family of document.querySelectorAll(".family")) {
    family.hidden = !family.querySelector(".op:not([hidden])");
  }
  document.getElementById("shown").textContent = `${shown} routes`;
}

fetch("/openapi.json", { headers: { Accept: "application/json" } })
  .then((response) => {
    if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status}`);
    return response.json();
  })
  .then((loaded) => {
    doc = loaded;
    render();
    document.getElementById("loading").hidden = true;
  })
  .catch((error) => {
    document.getElementById("loading").hidden = true;
    document.getElementById("notice").textContent = `The API description could not be shown: ${error.message}`;
  });
