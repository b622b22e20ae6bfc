// Project pages are static files that do not know the address they are served at: fill the
// site's own origin into the pip install line when the page was written without one.
"use strict";
for (const el of document.querySelectorAll(".origin")) {
  if (!el.textContent) {
    el.textContent = window.location.origin;
  }
}
