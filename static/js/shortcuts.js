// The keyboard shortcut list and its `?` dialog, drawn from a keymap
// (static/js/editor/keys.js): the editor and the review page show the same
// component, so a page's list cannot drift from its keys.
import { keyLabel } from "./editor/keys.js";

/** A <dl> of the keymap's keys (arrows shown once) and what they do. */
export function shortcutList(keymap) {
  const dl = document.createElement("dl");
  dl.className = "keys";
  for (const k of keymap) {
    const dt = document.createElement("dt");
    dt.innerHTML = k.keys.filter((c) => !c.startsWith("arrow") || c === "arrowleft")
      .map((c) => `<kbd>${c.startsWith("arrow") ? "← ↑ → ↓" : keyLabel(c)}</kbd>`).join(" ");
    const dd = document.createElement("dd");
    dd.textContent = k.help;
    dl.append(dt, dd);
  }
  return dl;
}

/**
 * Fills the page's #shortcuts-dialog (templates/_shortcuts_dialog.html) and any
 * #shortcuts panel; returns {dialog, toggle} for the page's `?` key.
 */
export function shortcutsDialog(keymap) {
  const dialog = document.getElementById("shortcuts-dialog");
  dialog.querySelector(".body").append(shortcutList(keymap));
  document.getElementById("shortcuts")?.append(shortcutList(keymap));
  const toggle = () => (dialog.open ? dialog.close() : dialog.showModal());
  return { dialog, toggle };
}
