// The editor's document (boxes + verified) with undo/redo and a dirty flag.
// Boxes are plain objects: {key, id, xmin, ymin, xmax, ymax, label, difficult,
// source, state, score}; `key` is local and stable, `id` is the server's (or null).
// Suggestions are model boxes in state "suggested"; "rejected" ones stay in the
// document (hidden) so that the save can tell the server about them.

const UNDO_LIMIT = 300;

function copyDoc(doc) {
  return { verified: doc.verified, boxes: doc.boxes.map((b) => ({ ...b })) };
}

function sameDoc(a, b) {
  if (a.verified !== b.verified || a.boxes.length !== b.boxes.length) return false;
  for (let i = 0; i < a.boxes.length; i++) {
    const x = a.boxes[i];
    const y = b.boxes[i];
    if (x.key !== y.key || x.xmin !== y.xmin || x.ymin !== y.ymin || x.xmax !== y.xmax ||
        x.ymax !== y.ymax || x.state !== y.state || x.label !== y.label || x.difficult !== y.difficult ||
        x.source !== y.source) {
      return false;
    }
  }
  return true;
}

export class EditorState {
  /** `server` is a photo state as the API gives it: {version, verdict, verified, boxes}. */
  constructor(server) {
    this.nextKey = 1;
    this.listeners = new Set();
    this.load(server);
  }

  /** Replace everything with the server's state (after a save, a reload or "use theirs"). */
  load(server) {
    this.version = server.version;
    this.verdict = server.verdict;
    this.doc = {
      verified: Boolean(server.verified),
      boxes: server.boxes.map((b) => this.fromServer(b)),
    };
    this.saved = copyDoc(this.doc);
    this.undoStack = [];
    this.redoStack = [];
    this.selected = null;
    this.pending = null;
    this.emit("load");
  }

  fromServer(b) {
    return {
      key: this.nextKey++, id: b.id ?? null, xmin: b.xmin, ymin: b.ymin, xmax: b.xmax, ymax: b.ymax,
      label: b.label || "rust", difficult: Boolean(b.difficult), source: b.source || "human",
      state: b.state || "accepted", score: b.score ?? null,
    };
  }

  on(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }
  emit(reason) { for (const fn of this.listeners) fn(reason, this); }

  get dirty() { return !sameDoc(this.doc, this.saved); }
  get boxes() { return this.doc.boxes; }
  byKey(key) { return this.doc.boxes.find((b) => b.key === key) || null; }
  get selectedBox() { return this.selected == null ? null : this.byKey(this.selected); }

  /** Annotation boxes: what the save sends and the XML holds. */
  annotations() { return this.doc.boxes.filter((b) => b.state === "accepted"); }
  suggestions() { return this.doc.boxes.filter((b) => b.state === "suggested"); }

  select(key) {
    if (this.selected === key) return;
    this.selected = key;
    this.emit("select");
  }

  /**
   * Change the document through `fn(doc)`; one undo step. During a drag call
   * begin() once, mutate boxes freely, then end(): still one step.
   */
  change(fn) {
    this.begin();
    fn(this.doc);
    this.end();
  }

  begin() {
    if (!this.pending) this.pending = copyDoc(this.doc);
  }

  /** Live update during a drag: redraw, but no undo step yet. */
  touch() { this.emit("live"); }

  end() {
    const before = this.pending;
    this.pending = null;
    if (!before || sameDoc(before, this.doc)) { this.emit("live"); return; }
    this.undoStack.push(before);
    if (this.undoStack.length > UNDO_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.emit("change");
  }

  undo() { this.swap(this.undoStack, this.redoStack); }
  redo() { this.swap(this.redoStack, this.undoStack); }

  swap(from, to) {
    if (this.pending || !from.length) return;
    to.push(copyDoc(this.doc));
    this.doc = from.pop();
    if (this.selected != null && !this.byKey(this.selected)) this.selected = null;
    this.emit("change");
  }

  addBox(coords, label) {
    const box = {
      key: this.nextKey++, id: null, ...coords, label, difficult: false,
      source: "human", state: "accepted", score: null,
    };
    this.change((doc) => doc.boxes.push(box));
    this.select(box.key);
    return box;
  }

  /** Remove a box; a model box is rejected instead (the model learns from it). */
  remove(key) {
    const box = this.byKey(key);
    if (!box) return;
    this.change((doc) => {
      if (box.source === "model" && box.id != null) box.state = "rejected";
      else doc.boxes.splice(doc.boxes.indexOf(box), 1);
    });
    if (this.selected === key) this.select(null);
  }

  setState(keys, state) {
    this.change(() => { for (const k of keys) { const b = this.byKey(k); if (b) b.state = state; } });
  }

  /**
   * A person moved or resized a suggestion: it becomes their box, derived from the
   * model's (the save sends `derived_from`; the server rejects the suggestion and
   * counts it as edited). Call inside a change.
   */
  correct(box) {
    if (box.state !== "suggested") return;
    Object.assign(box, { derivedFrom: box.id, id: null, source: "human", state: "accepted", score: null });
  }

  setVerified(value) { this.change((doc) => { doc.verified = value; }); }

  /** The body of PUT /boxes/: annotation boxes (ids kept), refused suggestions, verified. */
  saveBody() {
    return {
      boxes: this.annotations().map((b) => ({
        ...(b.id != null ? { id: b.id } : {}),
        ...(b.derivedFrom != null ? { derived_from: b.derivedFrom } : {}),
        xmin: b.xmin, ymin: b.ymin, xmax: b.xmax, ymax: b.ymax, label: b.label, difficult: b.difficult,
      })),
      rejected: this.doc.boxes.filter((b) => b.state === "rejected" && b.id != null).map((b) => b.id),
      verified: this.doc.verified,
    };
  }

  /** What a local draft keeps: the document and the version it was edited from. */
  draft() { return { version: this.version, doc: copyDoc(this.doc) }; }

  /** Put a draft back on top of the loaded state: unsaved, undoable. */
  restore(draft) {
    this.change((doc) => {
      doc.verified = Boolean(draft.doc.verified);
      doc.boxes = draft.doc.boxes.map((b) => ({ ...b, key: this.nextKey++ }));
    });
    this.version = draft.version;
    this.emit("change");
  }

  /** The server accepted our save (or our verdict): it is the new clean state. */
  acceptServer(server) {
    const selectedId = this.selectedBox?.id;
    this.load(server);
    if (selectedId != null) this.selected = this.doc.boxes.find((b) => b.id === selectedId)?.key ?? null;
  }

  /** Our own verdict was stored: take the new version, keep the unsaved edits. */
  rebase(server) {
    this.version = server.version;
    this.verdict = server.verdict;
    this.emit("verdict");
  }
}
