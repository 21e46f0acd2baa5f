// Upload a file to uploadd with tus-js-client speaking the IETF resumable
// upload draft, as an app would, and report each request and answer.
// usage: node rufh_upload.mjs --endpoint URL --token TOKEN --file PATH
//          --protocol ietf-draft-03|ietf-draft-05 [--chunk-size BYTES]
//          [--url-storage PATH] [--during-creation] [--no-filetype]
//          [--abort-at BYTES [--terminate]] [--terminate-url URL]
// Prints one JSON object a line: {"event": "request"|"response", ...} for
// each exchange, then one of "resuming" (a stored upload found), "success",
// "aborted" (after --abort-at bytes were sent), "terminated" or "error"
// (exit 1). With --url-storage an upload is found again by its fingerprint
// and resumed from the server's offset, as after a reload or a crash.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import * as tus from "tus-js-client";

const { values: args } = parseArgs({
  options: {
    endpoint: { type: "string" },
    token: { type: "string" },
    file: { type: "string" },
    protocol: { type: "string" },
    "chunk-size": { type: "string", default: "0" },
    "url-storage": { type: "string" },
    "during-creation": { type: "boolean", default: false },
    "no-filetype": { type: "boolean", default: false },
    "abort-at": { type: "string" },
    terminate: { type: "boolean", default: false },
    "terminate-url": { type: "string" },
  },
});

const report = (event, fields) =>
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const fail = (error) => {
  report("error", { message: String(error) });
  process.exit(1);
};

const options = {
  endpoint: args.endpoint,
  protocol: args.protocol,
  headers: { Authorization: `Bearer ${args.token}` },
  retryDelays: null,
  removeFingerprintOnSuccess: true,
  uploadDataDuringCreation: args["during-creation"],
  onBeforeRequest: (req) =>
    report("request", {
      method: req.getMethod(),
      url: req.getURL(),
      interop: req.getHeader("Upload-Draft-Interop-Version") ?? null,
      offset: req.getHeader("Upload-Offset") ?? null,
      complete: req.getHeader("Upload-Complete") ?? null,
      contentType: req.getHeader("Content-Type") ?? null,
    }),
  onAfterResponse: (req, res) =>
    report("response", {
      method: req.getMethod(),
      status: res.getStatus(),
      location: res.getHeader("Location") ?? null,
      offset: res.getHeader("Upload-Offset") ?? null,
      complete: res.getHeader("Upload-Complete") ?? null,
      interop: res.getHeader("Upload-Draft-Interop-Version") ?? null,
    }),
  onError: fail,
};

if (args["terminate-url"]) {
  tus.Upload.terminate(args["terminate-url"], options).then(() => {
    report("terminated", { url: args["terminate-url"] });
    process.exit(0);
  }, fail);
} else {
  const data = readFileSync(args.file);
  options.metadata = { filename: basename(args.file) };
  if (!args["no-filetype"]) options.metadata.filetype = "application/octet-stream";
  if (Number(args["chunk-size"]) > 0) options.chunkSize = Number(args["chunk-size"]);
  if (args["url-storage"]) {
    options.urlStorage = new tus.FileUrlStorage(args["url-storage"]);
  }
  let upload;
  const abortAt = args["abort-at"] === undefined ? null : Number(args["abort-at"]);
  let stopping = false;
  options.onProgress = (sent) => {
    if (abortAt === null || stopping || sent < abortAt) return;
    stopping = true;
    // Leave the request in the middle, as a closed laptop or a crash does.
    upload.abort(args.terminate).then(() => {
      report(args.terminate ? "terminated" : "aborted", { url: upload.url, sent });
      process.exit(0);
    }, fail);
  };
  options.onSuccess = ({ lastResponse }) => {
    report("success", {
      url: upload.url,
      status: lastResponse.getStatus(),
      location: lastResponse.getHeader("Location") ?? null,
      link: lastResponse.getHeader("Link") ?? null,
      body: lastResponse.getBody(),
    });
    process.exit(0);
  };
  upload = new tus.Upload(data, options);
  upload.findPreviousUploads().then((previous) => {
    if (previous.length > 0) {
      report("resuming", { url: previous[0].uploadUrl });
      upload.resumeFromPreviousUpload(previous[0]);
    }
    upload.start();
  }, fail);
}
