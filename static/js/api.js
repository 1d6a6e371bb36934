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
