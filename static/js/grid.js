// Photo grid: arrow keys move the focus between tiles (row by row as laid out),
// Enter opens the focused photo; Home / End jump to the first / last tile.
const grid = document.getElementById("photo-grid");
const links = () => Array.from(grid.querySelectorAll(".tile > a"));

function columns(items) {
  if (items.length < 2) return 1;
  const top = items[0].getBoundingClientRect().top;
  const n = items.findIndex((a) => a.getBoundingClientRect().top > top + 1);
  return n < 0 ? items.length : n;
}

grid.addEventListener("keydown", (e) => {
  const items = links();
  const i = items.indexOf(document.activeElement);
  if (i < 0) return;
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(items), ArrowUp: -columns(items) }[e.key];
  let j = null;
  if (step !== undefined) j = Math.min(items.length - 1, Math.max(0, i + step));
  else if (e.key === "Home") j = 0;
  else if (e.key === "End") j = items.length - 1;
  if (j === null) return;
  e.preventDefault();
  items[j].focus();
});

// The first tile takes the focus when the page opens with a filter, so the keys work at once.
if (new URLSearchParams(location.search).size && links().length) links()[0].focus({ preventScroll: true });
