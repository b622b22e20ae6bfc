// Client-side search over /packages.json: [[name, summary, versions, files], ...].
// Everything from the index is inserted with textContent, never parsed as markup: names and
// summaries come from PyPI.
"use strict";

const LIMIT = 100;
let packages = null;

function canonical(text) {
  // PEP 503 normalisation, so "Foo.Bar_baz" finds foo-bar-baz.
  return text.trim().toLowerCase().replace(/[-_.]+/g, "-");
}

function search(query) {
  const name = canonical(query);
  const words = query.trim().toLowerCase();
  if (!name) {
    return [];
  }
  const exact = [];
  const prefix = [];
  const inName = [];
  const inSummary = [];
  for (const entry of packages) {
    const pkg = entry[0];
    if (pkg === name) {
      exact.push(entry);
    } else if (pkg.startsWith(name)) {
      prefix.push(entry);
    } else if (pkg.includes(name)) {
      inName.push(entry);
    } else if (inSummary.length < LIMIT && entry[1].toLowerCase().includes(words)) {
      inSummary.push(entry);
    }
  }
  prefix.sort((a, b) => a[0].length - b[0].length || (a[0] < b[0] ? -1 : 1));
  return exact.concat(prefix, inName, inSummary).slice(0, LIMIT);
}

function show(query) {
  const results = document.getElementById("results");
  const status = document.getElementById("status");
  results.replaceChildren();
  if (packages === null) {
    return;
  }
  const found = search(query);
  if (!query.trim()) {
    status.textContent = `${packages.length.toLocaleString()} packages.`;
    return;
  }
  status.textContent = found.length === 0 ? "No package matches." :
    found.length === LIMIT ? `The first ${LIMIT} matches:` : `${found.length} found:`;
  for (const [name, summary, versions, files] of found) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/project/${encodeURIComponent(name)}/`;
    link.textContent = name;
    item.append(link);
    const counts = document.createElement("small");
    counts.textContent = ` ${versions} versions, ${files} files`;
    item.append(counts);
    if (summary) {
      const text = document.createElement("p");
      text.textContent = summary;
      item.append(text);
    }
    results.append(item);
  }
}

async function start() {
  const input = document.getElementById("query");
  const status = document.getElementById("status");
  const initial = new URLSearchParams(window.location.search).get("q") || "";
  input.value = initial;
  status.textContent = "Loading the package list...";
  try {
    const response = await fetch("/packages.json");
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    packages = await response.json();
  } catch (error) {
    status.textContent = `Cannot load the package list (${error.message}).`;
    return;
  }
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const url = new URL(window.location.href);
      url.searchParams.set("q", input.value);
      window.history.replaceState(null, "", url);
      show(input.value);
    }, 150);
  });
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    show(input.value);
  });
  show(initial);
}

start();
