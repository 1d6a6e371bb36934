// API client for the pages: small wrappers over the /api/v1/ endpoints.

/**
 * Upload one photo with progress. Resolves to that file's result as the API
 * gives it ({status, detail, photo, photo_id}); network failures resolve too.
 */
export function uploadPhoto({ endpoint, inspection, file, csrf, onProgress }) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const data = new FormData();
    data.append("inspection", inspection);
    data.append("files", file, file.name);
    xhr.open("POST", endpoint);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (body && Array.isArray(body.results) && body.results.length === 1) {
        resolve(body.results[0]);
      } else {
        const detail = (body && body.detail) || xhr.statusText || "the server did not answer";
        resolve({ status: xhr.status, detail });
      }
    };
    xhr.onerror = () => resolve({ status: 0, detail: "network error: the upload did not reach the server" });
    xhr.send(data);
  });
}

// --- the editor's calls -------------------------------------------------------

const WORDS = {
  0: "The server could not be reached (check the connection); your work is kept in this browser.",
  400: "The server refused the data",
  401: "You are signed out: sign in again in another tab, then save; your work is kept in this browser.",
  403: "You are not allowed to do this",
  404: "Not found",
  412: "Someone else saved this photo while you edited it.",
  428: "The save lacked the photo's version.",
  500: "The server failed; your work is kept in this browser. Try again in a moment.",
};

/** A message in words for a failed call: the server's own `detail` when it gave one. */
export function describe(status, body) {
  const detail = body && typeof body.detail === "string" ? body.detail : "";
  const base = WORDS[status] || WORDS[Math.floor(status / 100) * 100] || `The server answered ${status}`;
  if (!detail || status === 0 || status === 412) return base;
  return status === 400 || status === 403 || status === 404 ? `${base}: ${detail}` : detail;
}

/**
 * fetch() that always resolves to {ok, status, body, message}: a lost
 * connection is status 0, never a thrown error the editor could drop.
 */
export async function call(url, { method = "GET", body, version, csrf } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (version != null) headers["If-Match"] = `"${version}"`;
  if (csrf) headers["X-CSRFToken"] = csrf;
  let response;
  try {
    response = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    return { ok: false, status: 0, body: null, message: describe(0, null) };
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  return {
    ok: response.ok, status: response.status, body: data,
    message: response.ok ? "" : describe(response.status, data),
  };
}

export function saveBoxes(url, { version, body, csrf }) {
  return call(url, { method: "PUT", body, version, csrf });
}

export function setVerdict(url, { version, verdict, csrf }) {
  return call(url, { method: "POST", body: { verdict }, version, csrf });
}

export function getState(url) {
  return call(url);
}
