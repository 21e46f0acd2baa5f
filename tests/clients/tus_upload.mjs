// Upload a file to uploadd with tus-js-client, as a browser app would.
// usage: node tus_upload.mjs ENDPOINT TOKEN FILE PARALLEL CHUNK_SIZE
// Prints the upload URL on success; exits 1 with the error otherwise.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import * as tus from "tus-js-client";

const [endpoint, token, path, parallel, chunkSize] = process.argv.slice(2);
const data = readFileSync(path);
const options = {
  endpoint,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: basename(path), filetype: "application/octet-stream" },
  retryDelays: [0, 200, 500],
  removeFingerprintOnSuccess: true,
  onError: (error) => {
    console.error(String(error));
    process.exit(1);
  },
  onSuccess: () => {
    console.log(upload.url);
  },
};
if (Number(parallel) > 1) options.parallelUploads = Number(parallel);
if (Number(chunkSize) > 0) options.chunkSize = Number(chunkSize);
const upload = new tus.Upload(data, options);
upload.start();
