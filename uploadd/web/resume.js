// Resumable transfers for the page: a file's fingerprint, the offers made of
// the server's list of unfinished uploads (GET /uploads/), and a Transfer
// that sends a file through tus-js-client as one upload, or as parallel
// parts that uploadd joins (tus concatenation). Every upload carries the
// file's fingerprint and every part its place, so another browser, on this
// machine or another, that is given the same file continues each part from
// the offset uploadd holds (tus-js-client's uploadUrl option).
"use strict";

const Resume = (() => {
  const MiB = 1024 * 1024;
  const SMALLEST_CHUNK = 256 * 1024;

  // -- fingerprints ---------------------------------------------------------

  // The same file gives the same fingerprint in any browser: its size and
  // the SHA-256 of its first and last MiB (fast for any size).
  async function fingerprint(file) {
    const ends = new Blob([file.slice(0, MiB), file.slice(Math.max(0, file.size - MiB))]);
    const bytes = new Uint8Array(await ends.arrayBuffer());
    return `ends-sha256:${file.size}:${await sha256Hex(bytes)}`;
  }

  // Web Crypto exists only in secure contexts (https, localhost); a page
  // served over plain http elsewhere computes the digest itself.
  async function sha256Hex(bytes) {
    if (window.isSecureContext && window.crypto && crypto.subtle) {
      return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
    }
    return hex(sha256(bytes));
  }

  function hex(bytes) {
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const ror = (x, n) => (x >>> n) | (x << (32 - n));

  // SHA-256 (FIPS 180-4) of a Uint8Array, as 32 bytes.
  function sha256(data) {
    const padded = new Uint8Array((((data.length + 9 + 63) >> 6) << 6));
    padded.set(data);
    padded[data.length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(data.length / 0x20000000));
    view.setUint32(padded.length - 4, (data.length * 8) >>> 0);
    const h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const w = new Uint32Array(64);
    for (let block = 0; block < padded.length; block += 64) {
      for (let i = 0; i < 16; i += 1) w[i] = view.getUint32(block + 4 * i);
      for (let i = 16; i < 64; i += 1) {
        const s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
      }
      let [a, b, c, d, e, f, g, k] = h;
      for (let i = 0; i < 64; i += 1) {
        const t1 = (k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        [k, g, f, e, d, c, b, a] = [g, f, e, (d + t1) | 0, c, b, a, (t1 + t2) | 0];
      }
      [a, b, c, d, e, f, g, k].forEach((value, i) => { h[i] += value; });
    }
    const out = new Uint8Array(32);
    h.forEach((value, i) => new DataView(out.buffer).setUint32(4 * i, value));
    return out;
  }

  // -- offers -----------------------------------------------------------------

  // The server's unfinished uploads as one offer per file: a single upload,
  // or the parts of a parallel one in their order. An offer missing a part
  // (it expired) can only be discarded.
  function offers(listed) {
    const found = [];
    const groups = new Map();
    for (const entry of listed) {
      const meta = entry.metadata || {};
      const [index, count] = (meta.part || "").split("/").map(Number);
      if (entry.concat === "partial" && meta.group && index >= 1 && index <= count) {
        if (!groups.has(meta.group)) groups.set(meta.group, { entries: new Array(count), first: entry });
        groups.get(meta.group).entries[index - 1] = entry;
      } else if (entry.concat === null) {
        found.push(offer(entry, [entry]));
      }
    }
    for (const { entries, first } of groups.values()) {
      const made = offer(first, entries.filter(Boolean));
      made.broken = made.parts.length !== entries.length;
      found.push(made);
    }
    return found.sort((a, b) => a.created.localeCompare(b.created));
  }

  function offer(first, parts) {
    const sum = (name) => parts.reduce((total, part) => total + (part[name] || 0), 0);
    const expires = parts.filter((p) => !p.complete).map((p) => p.expires_at).sort();
    return {
      name: first.name || "unnamed upload",
      fingerprint: first.fingerprint,
      size: sum("size"),
      held: sum("offset"),
      created: first.created_at,
      expires: expires[0] || first.expires_at,
      parts,
      urls: parts.map((part) => part.url),
      broken: false,
    };
  }

  // The offer to continue ``file`` from: the one with its fingerprint that
  // holds most and that no upload on this page is sending or about to.
  function match(found, print, file, busy) {
    const fits = found.filter((o) => o.fingerprint === print && o.size === file.size && !o.broken
      && !o.taken && o.urls.every((url) => !busy.has(url)));
    const best = fits.sort((a, b) => b.held - a.held)[0] || null;
    // The same file chosen twice at once continues once, and starts afresh once.
    if (best) best.taken = true;
    return best;
  }

  // -- transfers --------------------------------------------------------------

  function encodeMetadata(metadata) {
    const encode = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
    return Object.entries(metadata).map(([key, value]) => `${key} ${encode(value)}`).join(",");
  }

  // [start, end) of each of ``count`` parts; the last takes the remainder.
  function split(total, count) {
    const each = Math.floor(total / count);
    return [...Array(count).keys()].map((i) => [i * each, i === count - 1 ? total : (i + 1) * each]);
  }

  function randomId() {
    return hex(crypto.getRandomValues(new Uint8Array(8)));
  }

  // An HTTP failure of the final upload, shaped like tus-js-client's errors.
  function httpError(status, detail) {
    const error = new Error(detail || `uploadd answered ${status}`);
    error.originalResponse = { getStatus: () => status, getBody: () => JSON.stringify({ detail }) };
    return error;
  }

  // tus-js-client slices even a whole file. Given whole, a File goes by
  // Chromium's cheaper path (its network service reads the file itself):
  // about half the browser's CPU of a slice (bench/browser.py).
  const wholeFiles = {
    async openFile(input) {
      return {
        size: input.size,
        slice: async (start, end) => ({
          value: start === 0 && end >= input.size ? input : input.slice(start, end),
          done: end >= input.size,
        }),
        close() {},
      };
    },
  };

  // One file sent as one tus upload, or as ``parts`` partial uploads sent
  // side by side and then joined; continued from ``from`` (an offer) if given.
  // ``hooks``: onProgress(sent, total), onSuccess(), onError(error).
  class Transfer {
    constructor(file, settings, hooks) {
      this.file = file;
      this.settings = settings;
      this.hooks = hooks;
      this.failed = false;
      this.joined = false;
      const from = settings.from;
      const count = from ? from.parts.length : settings.parts;
      let bounds = split(file.size, count);
      if (from && count > 1) {
        let start = 0;
        bounds = from.parts.map((part) => [start, (start += part.size)]);
      }
      const group = randomId();
      this.parts = bounds.map(([start, end], index) => {
        const metadata = count === 1 ? settings.metadata
          : { ...settings.metadata, part: `${index + 1}/${count}`, group };
        const part = { sent: 0, done: false, upload: null };
        part.upload = new tus.Upload(count === 1 ? file : file.slice(start, end), {
          endpoint: settings.endpoint,
          uploadUrl: from ? from.urls[index] : null,
          chunkSize: settings.chunkSize,
          fileReader: wholeFiles,
          retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
          metadata,
          headers: count === 1 ? {} : { "Upload-Concat": "partial" },
          onBeforeRequest: (request) => request.setHeader("Authorization", settings.authorization()),
          // This page finds uploads again through the server, in any browser.
          storeFingerprintForResuming: false,
          onProgress: (sent) => {
            part.sent = sent;
            this.hooks.onProgress(this.parts.reduce((total, p) => total + p.sent, 0), file.size);
          },
          onSuccess: () => {
            part.done = true;
            this.partDone();
          },
          onError: (error) => this.partFailed(part, error),
        });
        return part;
      });
    }

    // The upload URLs this transfer is sending to (known once created).
    urls() {
      return this.parts.map((part) => part.upload.url).filter(Boolean);
    }

    start() {
      this.failed = false;
      const waiting = this.parts.filter((part) => !part.done);
      if (waiting.length) for (const part of waiting) part.upload.start();
      else this.partDone();
    }

    // Stop sending; with ``terminate``, uploadd forgets what it holds too.
    async abort(terminate = false) {
      await Promise.all(this.parts.map((part) => part.upload.abort(terminate).catch(() => {})));
    }

    // A PATCH refused 413 met a proxy's limit on request bodies (uploadd
    // refuses a too large upload when it is created): the part goes on in
    // smaller chunks, down to 256 KiB.
    partFailed(part, error) {
      const response = error && error.originalResponse;
      const request = error && error.originalRequest;
      const options = part.upload.options;
      if (response && response.getStatus() === 413 && request && request.getMethod() === "PATCH"
          && options.chunkSize > SMALLEST_CHUNK) {
        options.chunkSize = Math.max(SMALLEST_CHUNK, Math.min(options.chunkSize, 64 * MiB) / 4);
        part.upload.start();
        return;
      }
      this.fail(error);
    }

    fail(error) {
      if (this.failed) return;
      this.failed = true;
      for (const part of this.parts) if (!part.done) part.upload.abort();
      this.hooks.onError(error);
    }

    async partDone() {
      if (this.parts.some((part) => !part.done) || this.joined) return;
      if (this.parts.length > 1) {
        try {
          await this.join();
        } catch (error) {
          this.fail(error);
          return;
        }
      }
      this.joined = true;
      this.hooks.onSuccess();
    }

    async join() {
      let response;
      try {
        response = await fetch(this.settings.endpoint, {
          method: "POST",
          headers: {
            "Tus-Resumable": "1.0.0",
            Authorization: this.settings.authorization(),
            "Upload-Concat": `final;${this.urls().join(" ")}`,
            "Upload-Metadata": encodeMetadata(this.settings.metadata),
          },
        });
      } catch (error) {
        throw httpError(0, "");
      }
      if (response.status !== 201) {
        const problem = await response.json().catch(() => ({}));
        throw httpError(response.status, problem.detail);
      }
    }
  }

  return { fingerprint, sha256, sha256Hex, hex, offers, match, split, Transfer };
})();
