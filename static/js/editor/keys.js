// The editor's keyboard map: labelImg's keys where it has them (W, A, D, Del,
// Ctrl+S, Ctrl+D, Space), the rest chosen not to clash. The page's shortcut
// list is rendered from this table, so the list and the keys cannot drift.

export const KEYMAP = [
  { keys: ["w"], command: "draw", help: "Draw a box (then drag)" },
  { keys: ["escape"], command: "cancel", help: "Stop drawing, clear the selection" },
  { keys: ["delete", "backspace"], command: "delete", help: "Delete the selected box (a suggestion is rejected)" },
  { keys: ["ctrl+d"], command: "duplicate", help: "Duplicate the selected box" },
  { keys: ["arrowleft", "arrowright", "arrowup", "arrowdown"], command: "nudge", help: "Nudge the selected box 1 px (Shift: 10 px)" },
  { keys: ["ctrl+z"], command: "undo", help: "Undo" },
  { keys: ["ctrl+y", "ctrl+shift+z"], command: "redo", help: "Redo" },
  { keys: ["ctrl+s"], command: "save", help: "Save" },
  { keys: ["a"], command: "prev", help: "Previous photo (in the grid's filter and order)" },
  { keys: ["d"], command: "next", help: "Next photo" },
  { keys: ["shift+d"], command: "nextUnlabelled", help: "Next unlabelled photo" },
  { keys: ["q"], command: "queueNext", help: "Next photo in the queue" },
  { keys: ["shift+q"], command: "queueSkip", help: "Skip this queue photo (others get it) and take the next" },
  { keys: [" "], command: "verified", help: "Mark verified / not verified (hold and drag: pan)" },
  { keys: ["r"], command: "verdictRust", help: "Verdict: rust" },
  { keys: ["n"], command: "verdictNoRust", help: "Verdict: no rust" },
  { keys: ["u"], command: "verdictUnsure", help: "Verdict: unsure (stays unlabelled)" },
  { keys: ["enter"], command: "accept", help: "Accept the selected suggestion (or pick the best one)" },
  { keys: ["shift+enter"], command: "acceptAbove", help: "Accept all suggestions at or above the score slider" },
  { keys: ["x"], command: "reject", help: "Reject the selected suggestion" },
  { keys: ["tab", "shift+tab"], command: "cycle", help: "Select the next / previous box" },
  { keys: ["+", "="], command: "zoomIn", help: "Zoom in (or the mouse wheel)" },
  { keys: ["-"], command: "zoomOut", help: "Zoom out" },
  { keys: ["f", "0"], command: "fit", help: "Fit the photo" },
  { keys: ["1"], command: "actualSize", help: "Zoom 1:1" },
  { keys: ["?"], command: "help", help: "Show or hide this list" },
];

const NAMES = { " ": "Space", arrowleft: "←", arrowright: "→", arrowup: "↑", arrowdown: "↓", escape: "Esc" };

/** The chord of a key event: "ctrl+shift+z", "shift+d", "?", "arrowleft". Cmd counts as Ctrl. */
export function chord(event) {
  let key = event.key.length === 1 ? event.key.toLowerCase() : event.key.toLowerCase();
  if (key === "spacebar") key = " ";
  const mods = [];
  if (event.ctrlKey || event.metaKey) mods.push("ctrl");
  if (event.altKey) mods.push("alt");
  // Shift only counts for letters and named keys: "?" and "+" already carry it.
  const letter = /^[a-z]$/.test(key);
  if (event.shiftKey && (letter || key.length > 1)) mods.push("shift");
  return [...mods, key].join("+");
}

/** event -> command name (or null) for a keymap: the editor's, the review page's. */
export function lookup(keymap) {
  const byChord = new Map(keymap.flatMap((k) => k.keys.map((c) => [c, k.command])));
  return (event) => byChord.get(chord(event)) ?? null;
}

const editorCommand = lookup(KEYMAP);

export function commandFor(event) {
  const command = editorCommand(event);
  if (command) return command;
  // Shift+arrow nudges 10 px: the same command.
  return chord(event).startsWith("shift+arrow") ? "nudge" : null;
}

// The supervisor's review page (static/js/supervisor/review.js): the editor's keys
// where the two pages do the same thing.
export const REVIEW_KEYMAP = [
  { keys: ["tab", "shift+tab"], command: "cycle", help: "Select the next / previous suggestion" },
  { keys: ["enter"], command: "accept", help: "Accept the selected suggestion (or save its correction)" },
  { keys: ["x"], command: "reject", help: "Reject the selected suggestion" },
  { keys: ["escape"], command: "cancel", help: "Undo the selected suggestion's correction" },
  { keys: ["a"], command: "prev", help: "Previous photo in the review queue" },
  { keys: ["d"], command: "next", help: "Next photo in the review queue" },
  { keys: ["f", "0"], command: "fit", help: "Fit the photo (the wheel zooms, a double click fits)" },
  { keys: ["?"], command: "help", help: "Show or hide this list" },
];

/** "Ctrl+Shift+Z" from "ctrl+shift+z", for the page. */
export function keyLabel(c) {
  if (c === "+") return "+";
  return c.split("+").map((p) => NAMES[p] || (p.length === 1 ? p.toUpperCase() : p[0].toUpperCase() + p.slice(1))).join("+");
}
