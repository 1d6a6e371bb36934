// Unsaved edits kept in localStorage, per photo: they survive a reload, a crash
// or a lost connection and are offered back when the photo is opened again.

const PREFIX = "rustwatch:draft:photo:";

function key(photoId) { return `${PREFIX}${photoId}`; }

/** Keep the draft ({version, doc}) with the time it was written. */
export function saveDraft(photoId, draft) {
  try {
    localStorage.setItem(key(photoId), JSON.stringify({ ...draft, at: new Date().toISOString() }));
    return true;
  } catch (err) {
    console.warn("could not keep the draft in this browser", err);
    return false;
  }
}

export function loadDraft(photoId) {
  try {
    const raw = localStorage.getItem(key(photoId));
    if (!raw) return null;
    const draft = JSON.parse(raw);
    return draft && draft.doc && Array.isArray(draft.doc.boxes) ? draft : null;
  } catch {
    return null;
  }
}

export function clearDraft(photoId) {
  try { localStorage.removeItem(key(photoId)); } catch { /* storage unavailable: nothing kept */ }
}
